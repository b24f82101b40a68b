#pragma once
// The adversarial half of VQGAN-style tokenizer training (docs/training.md §4): a small
// convolutional patch discriminator and the release's loss family, non-saturating GAN loss with
// an R1 gradient penalty on real images (docs/model.md §2.7: "perceptual + non-saturating GAN
// loss with R1 penalty"; the release never published that code, so the architecture is ours,
// sized for 28×28 grey images and a CPU).
#include <torch/torch.h>

#include <vector>

#include "io/json.h"

namespace maskgit {

struct DiscriminatorConfig {
  int64_t channels = 1;   // image channels
  int64_t filters = 32;   // width of the first conv; doubled at every stride-2 conv
  int64_t layers = 2;     // stride-2 4×4 convs: each halves the patch grid (28×28 → 7×7 logits at 2)

  // Throws std::runtime_error naming the field (prefixed by `path`) when out of range.
  void validate(const std::string& path = "discriminator") const;
  Json to_json() const;
  static DiscriminatorConfig from_json(const Json& json, const std::string& path = "discriminator");
};

// Conv_0 (4×4, stride 2) → LeakyReLU(0.2) → [Conv_i (4×4, stride 2) → GroupNorm_i → LeakyReLU] ×
// (layers − 1) → Conv_out (3×3) → one logit per patch. No batch statistics (the R1 penalty
// and data-parallel shards both want a per-image function).
class PatchDiscriminatorImpl : public torch::nn::Module {
 public:
  explicit PatchDiscriminatorImpl(const DiscriminatorConfig& config);
  // [N, C, H, W] pixels in [0, 1] (H, W multiples of 2^layers) → logits [N, 1, H/2^layers, W/2^layers].
  torch::Tensor forward(const torch::Tensor& images);
  const DiscriminatorConfig& config() const { return config_; }

 private:
  DiscriminatorConfig config_;
  std::vector<torch::nn::Conv2d> convs_;
  std::vector<torch::nn::GroupNorm> norms_;
  torch::nn::Conv2d conv_out_{nullptr};
};
TORCH_MODULE(PatchDiscriminator);

// Non-saturating losses on patch logits (means over every patch of every image):
// the discriminator's softplus(−D(real)) + softplus(D(fake)), the generator's softplus(−D(fake)).
torch::Tensor discriminator_loss(const torch::Tensor& real_logits, const torch::Tensor& fake_logits);
torch::Tensor generator_adversarial_loss(const torch::Tensor& fake_logits);
// R1 = mean over images of |∂D(x)/∂x|², D(x) an image's score (the mean of its patch logits
// [N, 1, h, w], or [N] scores), at real images `real` (which must require grad and have produced
// `real_logits`), with its graph (Mescheder et al. 2018); the loss adds γ/2 · R1.
torch::Tensor r1_penalty(const torch::Tensor& real_logits, const torch::Tensor& real);

}  // namespace maskgit
