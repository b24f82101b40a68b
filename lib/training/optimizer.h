#pragma once
// AdamW (Loshchilov & Hutter; docs/model.md §3.6's optimiser) through LibTorch's own
// torch::optim::AdamW, with decoupled weight decay on tensors of two or more dimensions only
// (matrices and convolution kernels; not biases, norms' scales or 1-D embeddings' offsets),
// through two parameter groups. Its state is exported to and imported from a checkpoint as
// named tensors, "adam.<parameter>.m" (first moment), "adam.<parameter>.v" (second moment) and
// metadata "adam.step", so that a checkpoint is the same file on every LibTorch version and a
// resumed run continues bit for bit.
#include <torch/torch.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace maskgit {

class CheckpointReader;
struct CheckpointWriter;

struct AdamWSettings {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

class AdamWOptimizer {
 public:
  // `named_parameters`: the trained tensors with their names (those without requires_grad are
  // skipped). The names key the checkpointed state, under `prefix` ("adam": the trained model's;
  // a second optimizer, such as the tokenizer's discriminator's, takes another).
  AdamWOptimizer(const std::vector<std::pair<std::string, torch::Tensor>>& named_parameters, AdamWSettings settings,
                 std::string prefix = "adam");

  void zero_grad();
  // One update at `learning_rate` (both groups; the decay group uses lr × weight_decay).
  void step(double learning_rate);
  int64_t steps_taken() const { return steps_; }
  // The trained tensors, in the order given.
  const std::vector<torch::Tensor>& parameters() const { return parameters_; }
  // Every moment tensor (to check them before a save).
  std::vector<torch::Tensor> moments() const;

  void save(CheckpointWriter& checkpoint) const;
  // Throws Error(bad_input) naming the checkpoint when a moment is missing or mis-shaped, or
  // "adam.step" is missing or out of range.
  void load(const CheckpointReader& checkpoint);

 private:
  torch::optim::AdamWParamState* state_of(const torch::Tensor& parameter) const;

  std::string prefix_;
  std::vector<std::string> names_;
  std::vector<torch::Tensor> parameters_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  int64_t steps_ = 0;
};

}  // namespace maskgit
