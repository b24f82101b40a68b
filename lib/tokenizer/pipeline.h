#pragma once
// Batched encode/decode and input gathering shared by the tools.
#include <torch/torch.h>

#include <string>
#include <vector>

#include "data/dataset.h"
#include "tokenizer/vqgan.h"

namespace maskgit {

// Images from explicit files (all must share one size) or, when `files` is empty, from a
// dataset. Converted to `channels`. Labels are -1 for files.
LabeledImages load_input_images(const std::vector<std::string>& files, const DatasetSpec& dataset,
                                int channels);

torch::Tensor encode_in_batches(VQTokenizer& tokenizer, const torch::Tensor& images, int64_t batch_size,
                                const torch::Device& device);
// Returns CPU images [N, C, height, width] clamped to [0, 1].
torch::Tensor decode_in_batches(VQTokenizer& tokenizer, const torch::Tensor& ids, int64_t height,
                                int64_t width, int64_t batch_size, const torch::Device& device);

}  // namespace maskgit
