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
// Returns CPU images [N, C, height, width] clamped to [0, 1].
torch::Tensor decode_in_batches(VQTokenizer& tokenizer, const torch::Tensor& ids, int64_t height,
                                int64_t width, int64_t batch_size, const torch::Device& device);

}  // namespace maskgit
