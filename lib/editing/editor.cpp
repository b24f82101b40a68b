#include "editing/editor.h"

#include <fmt/format.h>

#include "common/error.h"
#include "editing/region.h"
#include "editing/windowed.h"
#include "tokenizer/pipeline.h"

namespace maskgit {

EditPlan plan_edit(const EditSetup& setup, int64_t factor, const TransformerConfig& transformer) {
  TORCH_CHECK(setup.images.dim() == 4, "plan_edit: images must be [N, C, H, W]");
  const int64_t height = setup.images.size(2), width = setup.images.size(3);
  TORCH_CHECK(setup.regenerate.sizes() == torch::IntArrayRef({height, width}), "plan_edit: mask size differs");
  const int64_t rows = (height + factor - 1) / factor, columns = (width + factor - 1) / factor;
  if (rows < transformer.grid_height || columns < transformer.grid_width)
    throw InvalidArgument("images",
                          fmt::format("the image is {}x{} pixels ({}x{} tokens); the model needs at least {}x{} pixels",
                                      width, height, columns, rows, transformer.grid_width * factor,
                                      transformer.grid_height * factor));
  torch::Tensor pixels = setup.regenerate.to(torch::kBool);
  if (setup.known_pixels.defined()) pixels = pixels.logical_or(setup.known_pixels.logical_not());
  EditPlan plan;
  plan.token_mask = dilate_token_mask(pixel_mask_to_token_mask(pixels, factor), setup.dilate);
  // Outpainting: the image is a constraint, kept exactly; only what has no original is new (a
  // feather would blend generated pixels into the kept image, and there is nothing to blend
  // the new area with).
  plan.weight = setup.known_pixels.defined()
                    ? setup.known_pixels.logical_not().to(torch::kFloat)
                    : feathered_weight(plan.token_mask, factor, height, width, setup.feather_radius);
  plan.regenerated_tokens = plan.token_mask.sum().item<int64_t>();
  plan.tokens = rows * columns;
  plan.windows = static_cast<int64_t>(plan_windows(plan.token_mask, transformer.grid_height, transformer.grid_width).size());
  return plan;
}

void run_edits(VQTokenizer& tokenizer, BidirectionalTransformer& transformer, const EditSetup& setup,
               const EditPlan& plan, const std::vector<int64_t>& input_classes, int64_t variants, uint64_t seed,
               const DecodeOptions& options, int64_t batch_size, const torch::Device& device,
               const EditedBatchCallback& on_batch) {
  const int64_t inputs = setup.images.size(0);
  const int64_t height = setup.images.size(2), width = setup.images.size(3);
  TORCH_CHECK(static_cast<int64_t>(input_classes.size()) == inputs, "run_edits: one class per input");
  TORCH_CHECK(variants >= 1 && batch_size >= 1, "run_edits: variants and batch size must be positive");
  const torch::Tensor input_ids = encode_in_batches(tokenizer, setup.images, batch_size, device);
  const int64_t mask_token = transformer->config().mask_token();
  const int64_t total = inputs * variants;
  for (int64_t begin = 0; begin < total; begin += batch_size) {
    const int64_t end = std::min(total, begin + batch_size);
    std::vector<int64_t> sources, classes;
    std::vector<uint64_t> seeds;
    for (int64_t i = begin; i < end; ++i) {
      sources.push_back(i / variants);
      classes.push_back(input_classes[static_cast<size_t>(i / variants)]);
      seeds.push_back(seed + static_cast<uint64_t>(i));
    }
    const torch::Tensor source_index = torch::tensor(sources, torch::kLong);
    const torch::Tensor masked = input_ids.index_select(0, source_index).masked_fill(plan.token_mask, mask_token);
    const torch::Tensor ids = complete_token_grids(transformer, masked, classes, seeds, options, device);
    const torch::Tensor generated = decode_in_batches(tokenizer, ids, height, width, batch_size, device);
    const torch::Tensor originals = setup.images.index_select(0, source_index);
    on_batch(begin, ids, composite(originals, generated, plan.weight).clamp(0, 1));
  }
}

}  // namespace maskgit
