#include "tokenizer/pipeline.h"

#include <fmt/format.h>

#include "common/error.h"
#include "io/image.h"
#include "runtime/threads.h"

namespace maskgit {

torch::Tensor encode_in_batches(VQTokenizer& tokenizer, const torch::Tensor& images, int64_t batch_size,
                                const torch::Device& device) {
  std::vector<torch::Tensor> parts;
  for (int64_t begin = 0; begin < images.size(0); begin += batch_size) {
    adapt_cpu_threads();
    torch::Tensor batch = images.slice(0, begin, std::min(images.size(0), begin + batch_size)).to(device);
    parts.push_back(tokenizer->encode(batch).to(torch::kCPU));
  }
  return torch::cat(parts);
}

torch::Tensor decode_in_batches(VQTokenizer& tokenizer, const torch::Tensor& ids, int64_t height,
                                int64_t width, int64_t batch_size, const torch::Device& device) {
  std::vector<torch::Tensor> parts;
  for (int64_t begin = 0; begin < ids.size(0); begin += batch_size) {
    adapt_cpu_threads();
    torch::Tensor batch = ids.slice(0, begin, std::min(ids.size(0), begin + batch_size)).to(device);
    parts.push_back(decode_each(tokenizer, batch, height, width));
  }
  return torch::cat(parts);
}

torch::Tensor decode_each(VQTokenizer& tokenizer, const torch::Tensor& grids, int64_t height, int64_t width) {
  std::vector<torch::Tensor> images;
  images.reserve(static_cast<size_t>(grids.size(0)));
  for (int64_t i = 0; i < grids.size(0); ++i)
    images.push_back(tokenizer->decode(grids.narrow(0, i, 1), height, width).clamp(0, 1).to(torch::kCPU));
  if (images.empty()) return tokenizer->decode(grids, height, width).clamp(0, 1).to(torch::kCPU);
  return torch::cat(images);
}

}  // namespace maskgit
