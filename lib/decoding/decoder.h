#pragma once
// Confidence-based parallel decoding (SPEC.md section 5), exactly as the release does it, plus
// the optional extensions of later work (softmax temperature, top-k, classifier-free
// guidance, Halton position order), all off by default. Used by generation and editing.
#include <torch/torch.h>

#include <functional>
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
  bool halton_order = false;        // reveal positions in Halton order instead of by confidence
};

// Logits for a batch: ids [B, N] (MASK where unknown) and class tokens [B] → [B, N, K] (any
// float dtype; the decoder samples in float32). For guidance the decoder passes a batch of
// 2B rows, the unconditional ones carrying the "no class" token.
using LogitsFunction = std::function<torch::Tensor(const torch::Tensor& ids, const torch::Tensor& class_tokens)>;

// Called after each step with the step index and the ids still masked then ([B, N] bool).
using StepObserver = std::function<void(int64_t step, const torch::Tensor& still_masked)>;

struct DecodeRequest {
  torch::Tensor ids;            // [B, N] int64, `mask_id` where unknown; known ids never change
  torch::Tensor class_tokens;   // [B] int64
  int64_t mask_id = 0;
  int64_t no_class_token = -1;  // needed when guidance_scale != 1
  int64_t grid_width = 0;       // for the Halton order (N = grid_height · grid_width)
  // One generator per image, so that image b depends only on its own seed, never on the
  // batch it was decoded in.
  std::vector<at::Generator> generators;
};

// Returns the fully decoded ids [B, N] (the last step's samples; nothing left masked).
torch::Tensor decode_tokens(const DecodeRequest& request, const DecodeOptions& options,
                            const LogitsFunction& logits_of, const StepObserver& observe = nullptr);

// The Halton (2, 3) low-discrepancy order over an h × w grid: every cell exactly once.
std::vector<int64_t> halton_order(int64_t height, int64_t width);

}  // namespace maskgit
