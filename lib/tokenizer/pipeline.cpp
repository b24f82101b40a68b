#include "tokenizer/pipeline.h"

#include <fmt/format.h>

#include "common/error.h"
#include "io/image.h"
#include "runtime/threads.h"

namespace maskgit {

LabeledImages load_input_images(const std::vector<std::string>& files, const DatasetSpec& dataset,
                                int channels) {
  if (files.empty()) {
    DatasetSpec spec = dataset;
    spec.channels = channels;
    return load_dataset(spec);
  }
  LabeledImages out;
  std::vector<torch::Tensor> images;
  for (const auto& file : files) {
    const int expected_width = images.empty() ? 0 : static_cast<int>(images.front().size(2));
    const int expected_height = images.empty() ? 0 : static_cast<int>(images.front().size(1));
    images.push_back(read_image_as(file, channels, expected_width, expected_height));
  }
  out.images = torch::stack(images);
  out.labels = torch::full({out.images.size(0)}, -1, torch::kLong);
  return out;
}

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
    parts.push_back(tokenizer->decode(batch, height, width).clamp(0, 1).to(torch::kCPU));
  }
  return torch::cat(parts);
}

}  // namespace maskgit
