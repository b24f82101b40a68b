#pragma once
// Batched encode/decode shared by the tools.
#include <torch/torch.h>

#include <string>
#include <vector>

#include "data/dataset.h"
#include "tokenizer/vqgan.h"

namespace maskgit {

torch::Tensor encode_in_batches(VQTokenizer& tokenizer, const torch::Tensor& images, int64_t batch_size,
                                const torch::Device& device);
// Returns CPU images [N, C, height, width] clamped to [0, 1], each decoded on its own
// (decode_each), `batch_size` ids moved to the device at a time.
torch::Tensor decode_in_batches(VQTokenizer& tokenizer, const torch::Tensor& ids, int64_t height,
                                int64_t width, int64_t batch_size, const torch::Device& device);
// Token grids [N, h, w] (on the tokenizer's device) → CPU images [N, C, height, width] in [0, 1],
// decoded one image at a time: a convolution's rounding can depend on the batch it runs in
// (oneDNN on the CPU), and an image's pixels must not depend on which images were generated
// with it (--batch-size, --replay of one image of a run give the same bytes).
torch::Tensor decode_each(VQTokenizer& tokenizer, const torch::Tensor& grids, int64_t height, int64_t width);

}  // namespace maskgit
