#pragma once
// Decoding token grids of any size at least the model's trained grid. A grid of exactly the
// trained size is one decode; a larger one (an outpainted canvas, a big image) is decoded in
// overlapping windows of the trained size, one after another, each conditioned on every
// token already known inside it (the original's and those earlier windows produced).
#include <torch/torch.h>

#include <vector>

#include "decoding/decoder.h"
#include "transformer/transformer.h"

namespace maskgit {

struct TokenWindow {
  int64_t top = 0;
  int64_t left = 0;
};

// Window corners along one axis: 0, then steps of about half a window, the last one flush
// with the far edge, so consecutive windows overlap by at least half their size.
std::vector<int64_t> window_starts(int64_t length, int64_t window);

// The windows to decode, in order, for an [h, w] grid whose `unknown` cells are to be
// generated: each time, of the windows that still hold unknown cells, the one with the most
// known cells (the earliest in raster order on ties), until every cell is known. Windows
// without unknown cells are never decoded.
std::vector<TokenWindow> plan_windows(const torch::Tensor& unknown, int64_t window_height, int64_t window_width);

// Completes grids ids [B, h, w] (int64, the mask token where unknown; every row with the same
// unknown cells) with h, w at least the trained grid. Row b uses seeds[b] for its first
// window and mix_seed(seeds[b], k) for window k > 0, so a single-window grid decodes exactly
// as generation does. classes[b] = -1 decodes with the "no class" token.
torch::Tensor complete_token_grids(BidirectionalTransformer& transformer, const torch::Tensor& ids,
                                   const std::vector<int64_t>& classes, const std::vector<uint64_t>& seeds,
                                   const DecodeOptions& options, const torch::Device& device);

}  // namespace maskgit
