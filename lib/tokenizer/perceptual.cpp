#include "tokenizer/perceptual.h"

#include <fmt/format.h>

#include <filesystem>

#include "common/error.h"
#include "io/file_hash.h"

namespace maskgit {

PerceptualLoss::PerceptualLoss(const std::string& directory, int64_t channels, const torch::Device& device)
    : network_(read_classifier(directory, device)) {
  if (network_.config().channels != channels)
    throw_bad_input(fmt::format("{}: the perceptual network takes {} channel(s), the tokenizer's images have {}",
                                directory, network_.config().channels, channels));
  for (auto& parameter : network_.model->parameters()) parameter.set_requires_grad(false);
  network_.model->eval();
  sha256_ = sha256_file((std::filesystem::path(directory) / kClassifierWeightsFile).string());
}

void PerceptualLoss::check_image_size(int64_t height, int64_t width) const {
  if (height != network_.config().height || width != network_.config().width)
    throw_bad_input(fmt::format("{}: the perceptual network takes {}×{} images, the tokenizer's are {}×{}",
                                network_.directory, network_.config().width, network_.config().height, width, height));
}

torch::Tensor PerceptualLoss::operator()(const torch::Tensor& reconstructions, const torch::Tensor& images) {
  const int64_t height = network_.config().height, width = network_.config().width;
  if (images.size(2) < height || images.size(3) < width)
    throw_bad_input(fmt::format("{}: the perceptual network takes {}×{} images, not {}×{}", network_.directory, width,
                                height, images.size(3), images.size(2)));
  auto crop = [&](const torch::Tensor& x) { return x.narrow(2, 0, height).narrow(3, 0, width); };
  std::vector<torch::Tensor> target;
  {
    torch::NoGradGuard no_grad;
    target = network_.model->activations(crop(images));
  }
  const std::vector<torch::Tensor> actual = network_.model->activations(crop(reconstructions).clamp(0, 1));
  auto unit = [](const torch::Tensor& x) { return x / (x.pow(2).sum(1, true).sqrt() + 1e-10); };
  torch::Tensor loss = torch::zeros({}, images.options());
  for (size_t i = 0; i < actual.size(); ++i)
    loss = loss + (unit(actual[i]) - unit(target[i])).pow(2).sum(1).mean();
  return loss;
}

}  // namespace maskgit
