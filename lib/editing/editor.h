#pragma once
// The editing pipeline shared by maskgit-inpaint, maskgit-outpaint and maskgit-edit
// (docs/editing.md): encode the input, overwrite the tokens of the region with MASK,
// decode them conditioned on the rest (windowed when the grid is larger than the model's),
// decode the grid to pixels and blend it onto the original with a feathered weight.
#include <torch/torch.h>

#include <functional>
#include <vector>

#include "decoding/decoder.h"
#include "tokenizer/vqgan.h"
#include "transformer/transformer.h"

namespace maskgit {

struct EditSetup {
  torch::Tensor images;        // [N, C, H, W] in [0, 1]: the inputs (placed on the canvas when outpainting)
  torch::Tensor regenerate;    // [H, W] bool: the pixels to regenerate
  // [H, W] bool: where an original exists (undefined = everywhere). Those pixels come out as the
  // original's exactly (weight 0, whatever the feather), the others are generated (weight 1).
  torch::Tensor known_pixels;
  int64_t dilate = 0;          // extra tokens around the region
  double feather_radius = 0;   // Gaussian σ in pixels for the composite
};

struct EditPlan {
  torch::Tensor token_mask;  // [h, w] bool: the tokens decoded anew
  torch::Tensor weight;      // [H, W] float: how much of the generated pixel each output pixel takes
  int64_t regenerated_tokens = 0;
  int64_t tokens = 0;
  int64_t windows = 0;       // decoding windows (1 for a grid of the trained size)
};

// Token mask (the pixel rule, pixels without an original, then the dilation) and compositing
// weight. InvalidArgument("images") when the grid is smaller than the model's. A plan with
// regenerated_tokens == 0 means there is nothing to do; the caller names the empty input.
EditPlan plan_edit(const EditSetup& setup, int64_t factor, const TransformerConfig& transformer);

// Called as outputs are finished: outputs [begin, begin + B) with their token grids
// [B, h, w] and composited images [B, C, H, W] (CPU, in [0, 1]).
using EditedBatchCallback = std::function<void(int64_t begin, const torch::Tensor& ids, const torch::Tensor& images)>;

// Output i is variant i % variants of input i / variants, decoded with seed `seed + i` and
// input_classes[i / variants] (-1 = the "no class" token).
void run_edits(VQTokenizer& tokenizer, BidirectionalTransformer& transformer, const EditSetup& setup,
               const EditPlan& plan, const std::vector<int64_t>& input_classes, int64_t variants, uint64_t seed,
               const DecodeOptions& options, int64_t batch_size, const torch::Device& device,
               const EditedBatchCallback& on_batch);

}  // namespace maskgit
