#include "editing/windowed.h"

#include <fmt/format.h>

#include "common/error.h"
#include "data/batcher.h"
#include "generation/sampler.h"

namespace maskgit {

std::vector<int64_t> window_starts(int64_t length, int64_t window) {
  TORCH_CHECK(window > 0 && length >= window, "window_starts: the grid is smaller than the window");
  const int64_t stride = std::max<int64_t>(1, window / 2);
  std::vector<int64_t> starts;
  for (int64_t start = 0; start + window < length; start += stride) starts.push_back(start);
  starts.push_back(length - window);
  return starts;
}

std::vector<TokenWindow> plan_windows(const torch::Tensor& unknown, int64_t window_height, int64_t window_width) {
  TORCH_CHECK(unknown.dim() == 2, "plan_windows: unknown must be [h, w]");
  torch::Tensor remaining = unknown.to(torch::kBool).clone();
  std::vector<TokenWindow> candidates;
  for (int64_t top : window_starts(unknown.size(0), window_height))
    for (int64_t left : window_starts(unknown.size(1), window_width)) candidates.push_back({top, left});
  std::vector<TokenWindow> order;
  while (remaining.any().item<bool>()) {
    int64_t best = -1, best_known = -1;
    for (size_t i = 0; i < candidates.size(); ++i) {
      const torch::Tensor cells = remaining.slice(0, candidates[i].top, candidates[i].top + window_height)
                                      .slice(1, candidates[i].left, candidates[i].left + window_width);
      const int64_t unknown_cells = cells.sum().item<int64_t>();
      if (unknown_cells == 0) continue;
      const int64_t known_cells = window_height * window_width - unknown_cells;
      if (known_cells > best_known) {
        best = static_cast<int64_t>(i);
        best_known = known_cells;
      }
    }
    const TokenWindow window = candidates[static_cast<size_t>(best)];
    order.push_back(window);
    remaining.slice(0, window.top, window.top + window_height)
        .slice(1, window.left, window.left + window_width)
        .fill_(false);
  }
  return order;
}

torch::Tensor complete_token_grids(BidirectionalTransformer& transformer, const torch::Tensor& ids,
                                   const std::vector<int64_t>& classes, const std::vector<uint64_t>& seeds,
                                   const DecodeOptions& options, const torch::Device& device) {
  const TransformerConfig& config = transformer->config();
  TORCH_CHECK(ids.dim() == 3, "complete_token_grids: ids must be [B, h, w]");
  const int64_t batch = ids.size(0), rows = ids.size(1), columns = ids.size(2);
  TORCH_CHECK(static_cast<int64_t>(classes.size()) == batch && static_cast<int64_t>(seeds.size()) == batch,
              "complete_token_grids: one class and one seed per grid");
  if (rows < config.grid_height || columns < config.grid_width)
    throw InvalidArgument("ids", fmt::format("a {}x{} token grid is smaller than the model's {}x{}", columns, rows,
                                             config.grid_width, config.grid_height));
  const torch::Tensor unknown = ids[0] == config.mask_token();
  TORCH_CHECK((ids == config.mask_token()).eq(unknown.unsqueeze(0)).all().item<bool>(),
              "complete_token_grids: every grid of a batch must have the same unknown cells");
  torch::Tensor grids = ids.to(torch::kCPU).to(torch::kLong).clone();
  const std::vector<TokenWindow> windows = plan_windows(unknown, config.grid_height, config.grid_width);
  for (size_t k = 0; k < windows.size(); ++k) {
    std::vector<uint64_t> window_seeds;
    for (uint64_t seed : seeds) window_seeds.push_back(k == 0 ? seed : mix_seed(seed, k));
    torch::Tensor view = grids.slice(1, windows[k].top, windows[k].top + config.grid_height)
                             .slice(2, windows[k].left, windows[k].left + config.grid_width);
    const torch::Tensor completed =
        complete_tokens(transformer, view.reshape({batch, -1}), classes, window_seeds, options, device);
    view.copy_(completed.view({batch, config.grid_height, config.grid_width}));
  }
  return grids;
}

}  // namespace maskgit
