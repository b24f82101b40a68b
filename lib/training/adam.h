#pragma once
// Adam with decoupled weight decay (AdamW), written out so that its whole state is a set of
// named tensors we checkpoint into safetensors ourselves: identical across LibTorch versions
// and resumable bit for bit.
#include <torch/torch.h>

#include <string>
#include <vector>

#include "io/safetensors.h"

namespace maskgit {

struct AdamOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // decoupled; applied to tensors with ≥ 2 dims only
};

class Adam {
 public:
  Adam(std::vector<std::pair<std::string, torch::Tensor>> named_parameters, AdamOptions options);

  void zero_grad();
  void step(double learning_rate);
  int64_t steps_taken() const { return step_; }
  // The first and second moments of every parameter (to check them before a save).
  std::vector<torch::Tensor> moments() const;

  // State under "adam.<param>.m", "adam.<param>.v" and metadata "adam.step".
  void save_state(SafetensorsFile& file) const;
  // Throws Error(bad_input) naming `source` if a state tensor is missing or mis-shaped.
  void load_state(const SafetensorsFile& file, const std::string& source);

 private:
  struct Slot {
    std::string name;
    torch::Tensor parameter, first_moment, second_moment;
  };
  std::vector<Slot> slots_;
  AdamOptions options_;
  int64_t step_ = 0;
};

// Linear warm-up to `peak`, then cosine decay to peak·final_fraction at `total` steps.
double warmup_cosine_lr(int64_t step, int64_t total, int64_t warmup, double peak, double final_fraction);

}  // namespace maskgit
