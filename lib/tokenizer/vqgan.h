#pragma once
// The VQ tokenizer of docs/model.md §2: a convolutional encoder, a nearest-neighbour
// codebook, and a convolutional decoder. Sub-module names mirror the release's Flax layout
// (encoder.ResBlock_3.Conv_1.weight ↔ encoder/ResBlock_3/Conv_1/kernel), so a converter maps
// checkpoint keys one to one.
#include <torch/torch.h>

#include <vector>

#include "tokenizer/config.h"

namespace maskgit {

class ResBlockImpl : public torch::nn::Module {
 public:
  ResBlockImpl(int64_t in_channels, int64_t out_channels, const TokenizerConfig& config);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  bool changes_width_;
  bool release_shortcut_;
  torch::nn::GroupNorm norm0_{nullptr}, norm1_{nullptr};
  torch::nn::Conv2d conv0_{nullptr}, conv1_{nullptr}, shortcut_{nullptr};
};
TORCH_MODULE(ResBlock);

class EncoderImpl : public torch::nn::Module {
 public:
  explicit EncoderImpl(const TokenizerConfig& config);
  // [N, C, H, W] with H, W multiples of the downsample factor → [N, D, H/f, W/f].
  torch::Tensor forward(const torch::Tensor& images);

 private:
  TokenizerConfig config_;
  torch::nn::Conv2d conv_in_{nullptr}, conv_out_{nullptr};
  torch::nn::GroupNorm norm_out_{nullptr};
  std::vector<ResBlock> blocks_;
};
TORCH_MODULE(Encoder);

class DecoderImpl : public torch::nn::Module {
 public:
  explicit DecoderImpl(const TokenizerConfig& config);
  // [N, D, h, w] → [N, C, h·f, w·f], not squashed (clamp when writing pixels).
  torch::Tensor forward(const torch::Tensor& latents);
  // The last convolution's kernel [C, F, 3, 3]: where VQGAN's adaptive adversarial weight
  // compares gradient norms (docs/training.md §4).
  const torch::Tensor& output_weight() const { return conv_out_->weight; }

 private:
  TokenizerConfig config_;
  torch::nn::Conv2d conv_in_{nullptr}, conv_out_{nullptr};
  std::vector<torch::nn::Conv2d> upsample_convs_;
  torch::nn::GroupNorm norm_out_{nullptr};
  std::vector<ResBlock> blocks_;
};
TORCH_MODULE(Decoder);

struct Quantized {
  torch::Tensor latents;          // straight-through quantized latents [N, D, h, w]
  torch::Tensor ids;              // [N, h, w] int64
  torch::Tensor codebook_loss;    // |q − sg(z)|²
  torch::Tensor commitment_loss;  // |sg(q) − z|² (unweighted)
};

class VectorQuantizerImpl : public torch::nn::Module {
 public:
  explicit VectorQuantizerImpl(const TokenizerConfig& config);
  Quantized forward(const torch::Tensor& latents);
  // Nearest code by plain squared Euclidean distance: [N, D, h, w] → [N, h, w].
  torch::Tensor nearest_ids(const torch::Tensor& latents) const;
  // [N, h, w] ids → [N, D, h, w] code vectors.
  torch::Tensor lookup(const torch::Tensor& ids) const;

  torch::Tensor codebook;  // [K, D]
};
TORCH_MODULE(VectorQuantizer);

struct Reconstruction {
  torch::Tensor images;  // decoder output at the padded size
  Quantized quantized;
  torch::Tensor latents;  // encoder output before quantization
};

class VQTokenizerImpl : public torch::nn::Module {
 public:
  explicit VQTokenizerImpl(const TokenizerConfig& config);

  const TokenizerConfig& config() const { return config_; }
  int64_t downsample_factor() const { return config_.downsample_factor(); }
  // Token grid size for an image of the given size (images are padded up to a multiple of f).
  int64_t grid_size(int64_t pixels) const;

  // Images [N, C, H, W] in [0,1] (any H, W) → ids [N, ceil(H/f), ceil(W/f)] int64.
  torch::Tensor encode(const torch::Tensor& images);
  // ids [N, h, w] → images [N, C, height, width] (cropped from the h·f × w·f decode; 0 = full).
  torch::Tensor decode(const torch::Tensor& ids, int64_t height = 0, int64_t width = 0);
  // Training pass on images whose sides are multiples of f.
  Reconstruction forward(const torch::Tensor& images);

  // Edge-replicates images up to multiples of f so any user size can be tokenized.
  torch::Tensor pad_to_multiple(const torch::Tensor& images) const;

  Encoder encoder{nullptr};
  Decoder decoder{nullptr};
  VectorQuantizer quantizer{nullptr};

 private:
  TokenizerConfig config_;
};
TORCH_MODULE(VQTokenizer);

int64_t count_parameters(const torch::nn::Module& module);

}  // namespace maskgit
