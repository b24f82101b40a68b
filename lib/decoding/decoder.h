#pragma once
// Confidence-based parallel decoding (docs/decoding.md; the release's
// maskgit/libml/parallel_decode.py), exactly as the release does it, plus the optional
// extensions of later work (softmax temperature, top-k, classifier-free guidance, Halton
// position order), all off by default. Used by generation and editing.
//
// The whole loop runs as batched tensor ops on the device of the logits: sampling, noise,
// guidance, top-k and re-masking are float32 tensor ops, the number of tokens to re-mask at
// every step of every image is computed from the schedule before the loop, and random numbers
// come from a counter-based generator (decoding/counter_rng.h), so no step waits for the host
// and only the final ids come back.
#include <torch/torch.h>

#include <functional>
#include <stdexcept>
#include <vector>

#include "decoding/schedule.h"

namespace maskgit {

struct DecodeOptions {
  int64_t steps = 8;        // T
  int64_t start_step = 0;   // first t; the release's box editing starts at 2 of 12
  MaskSchedule schedule;    // cosine
  double choice_temperature = 4.5;  // τ0, annealed as τ0·(1 − (t+1)/T)
  double temperature = 1.0;         // softmax temperature on logits (1 = the release)
  int64_t top_k = 0;                // 0 = off
  double guidance_scale = 1.0;      // classifier-free guidance s (1 = off)
  // How the guidance scale is spread over the steps: constant (s at every step) or linear
  // (from about 1 at the first step to s at the last: guidance_scale_at).
  GuidanceSchedule guidance_schedule = GuidanceSchedule::constant;
  bool halton_order = false;        // reveal positions in Halton order instead of by confidence
};

// Logits for a batch: ids [B, N] (MASK where unknown) and class tokens [B], both int64 on the
// decoding device → [B, N, K] on the same device (any float dtype; the decoder samples in
// float32). For guidance the decoder calls it twice per step, with the classes and with the
// "no class" token (skipped when every image is decoded without a class).
using LogitsFunction = std::function<torch::Tensor(const torch::Tensor& ids, const torch::Tensor& class_tokens)>;

// Called after each step with the step index and the ids still masked then ([B, N] bool, on
// the decoding device; reading it synchronises with the device).
using StepObserver = std::function<void(int64_t step, const torch::Tensor& still_masked)>;

struct DecodeRequest {
  torch::Tensor ids;            // [B, N] int64, `mask_id` where unknown; known ids never change.
                                // Its device is the decoding device.
  torch::Tensor class_tokens;   // [B] int64
  int64_t mask_id = 0;
  int64_t no_class_token = -1;  // needed when guidance_scale != 1
  int64_t grid_width = 0;       // for the Halton order (N = grid_height · grid_width)
  // One seed per image: image b's random numbers depend on seeds[b] alone (counter_rng.h),
  // never on the batch it was decoded in or the device.
  std::vector<uint64_t> seeds;
};

// Thrown when the logits function returned NaN or infinity at some step.
class NonFiniteLogits : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Returns the fully decoded ids [B, N] int64 on the decoding device (nothing left masked).
// Throws std::invalid_argument for malformed requests (shapes, seed count, steps) and
// NonFiniteLogits when the model's logits were not all finite (checked once, after the loop).
torch::Tensor decode_tokens(const DecodeRequest& request, const DecodeOptions& options,
                            const LogitsFunction& logits_of, const StepObserver& observe = nullptr);

// The tokens each image keeps masked after every step: int64 [steps, B], row t = the count
// after step t (0 from the last step on, and for images with nothing unknown). Row t is the
// release's floor(N0·γ((t+1)/T)) clamped to [1, unknown − 1] (masked_after_step), with N0 the
// image's unknown tokens at the start. Rows before start_step are 0 and unused.
torch::Tensor masked_count_table(const torch::Tensor& initially_unknown, const DecodeOptions& options);

// The guidance scale used at step t (0-based) of `steps`: options.guidance_scale when constant,
// 1 + (guidance_scale − 1)·(t+1)/steps when linear (so 1, no guidance, stays 1).
double guidance_scale_at(const DecodeOptions& options, int64_t step, int64_t steps);

// The Halton (2, 3) low-discrepancy order over an h × w grid: every cell exactly once.
std::vector<int64_t> halton_order(int64_t height, int64_t width);

}  // namespace maskgit
