#include "tokenizer/vqgan.h"

#include <fmt/format.h>

namespace maskgit {
namespace nn = torch::nn;
namespace F = torch::nn::functional;

namespace {

nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, bool bias) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, kernel).padding(kernel / 2).bias(bias));
}

nn::GroupNorm group_norm(int64_t channels, const TokenizerConfig& config) {
  return nn::GroupNorm(nn::GroupNormOptions(config.norm_groups, channels).eps(config.norm_eps));
}

torch::Tensor swish(const torch::Tensor& x) { return x * torch::sigmoid(x); }

}  // namespace

ResBlockImpl::ResBlockImpl(int64_t in_channels, int64_t out_channels, const TokenizerConfig& config)
    : changes_width_(in_channels != out_channels), release_shortcut_(config.release_shortcut) {
  norm0_ = register_module("GroupNorm_0", group_norm(in_channels, config));
  conv0_ = register_module("Conv_0", conv(in_channels, out_channels, 3, false));
  norm1_ = register_module("GroupNorm_1", group_norm(out_channels, config));
  conv1_ = register_module("Conv_1", conv(out_channels, out_channels, 3, false));
  if (changes_width_) {
    // The release applies its 1×1 conv to h (out→out); a true residual maps x (in→out).
    const int64_t shortcut_in = release_shortcut_ ? out_channels : in_channels;
    shortcut_ = register_module("Conv_2", conv(shortcut_in, out_channels, 1, false));
  }
}

torch::Tensor ResBlockImpl::forward(const torch::Tensor& x) {
  torch::Tensor h = conv0_(swish(norm0_(x)));
  h = conv1_(swish(norm1_(h)));
  if (!changes_width_) return x + h;
  return release_shortcut_ ? h + shortcut_(h) : shortcut_(x) + h;
}

EncoderImpl::EncoderImpl(const TokenizerConfig& config) : config_(config) {
  conv_in_ = register_module("Conv_0", conv(config.channels, config.filters, 3, false));
  int64_t width = config.filters;
  auto add_block = [&](int64_t out) {
    blocks_.push_back(register_module(fmt::format("ResBlock_{}", blocks_.size()),
                                      ResBlock(width, out, config)));
    width = out;
  };
  for (int64_t level = 0; level < config.levels(); ++level)
    for (int64_t r = 0; r < config.num_res_blocks; ++r)
      add_block(config.filters * config.channel_multipliers[level]);
  for (int64_t r = 0; r < config.num_res_blocks; ++r) add_block(width);
  norm_out_ = register_module("GroupNorm_0", group_norm(width, config));
  conv_out_ = register_module("Conv_1", conv(width, config.embedding_dim, 1, true));
}

torch::Tensor EncoderImpl::forward(const torch::Tensor& images) {
  torch::Tensor x = conv_in_(images);
  size_t block = 0;
  for (int64_t level = 0; level < config_.levels(); ++level) {
    for (int64_t r = 0; r < config_.num_res_blocks; ++r) x = blocks_[block++](x);
    if (level < config_.levels() - 1) x = F::avg_pool2d(x, F::AvgPool2dFuncOptions(2).stride(2));
  }
  for (int64_t r = 0; r < config_.num_res_blocks; ++r) x = blocks_[block++](x);
  return conv_out_(swish(norm_out_(x)));
}

DecoderImpl::DecoderImpl(const TokenizerConfig& config) : config_(config) {
  const int64_t levels = config.levels();
  int64_t width = config.filters * config.channel_multipliers[levels - 1];
  conv_in_ = register_module("Conv_0", conv(config.embedding_dim, width, 3, true));
  // Flax numbers modules of one type in creation order; we register in the same order.
  auto add_block = [&](int64_t out) {
    blocks_.push_back(register_module(fmt::format("ResBlock_{}", blocks_.size()),
                                      ResBlock(width, out, config)));
    width = out;
  };
  for (int64_t r = 0; r < config.num_res_blocks; ++r) add_block(width);
  for (int64_t level = levels - 1; level >= 0; --level) {
    for (int64_t r = 0; r < config.num_res_blocks; ++r)
      add_block(config.filters * config.channel_multipliers[level]);
    if (level > 0)
      upsample_convs_.push_back(register_module(fmt::format("Conv_{}", upsample_convs_.size() + 1),
                                                conv(width, width, 3, true)));
  }
  norm_out_ = register_module("GroupNorm_0", group_norm(width, config));
  conv_out_ = register_module(fmt::format("Conv_{}", levels), conv(width, config.channels, 3, true));
}

torch::Tensor DecoderImpl::forward(const torch::Tensor& latents) {
  torch::Tensor x = conv_in_(latents);
  size_t block = 0;
  for (int64_t r = 0; r < config_.num_res_blocks; ++r) x = blocks_[block++](x);
  size_t upsample = 0;
  for (int64_t level = config_.levels() - 1; level >= 0; --level) {
    for (int64_t r = 0; r < config_.num_res_blocks; ++r) x = blocks_[block++](x);
    if (level > 0) {
      x = F::interpolate(x, F::InterpolateFuncOptions()
                                .scale_factor(std::vector<double>{2.0, 2.0})
                                .mode(torch::kNearest));
      x = upsample_convs_[upsample++](x);
    }
  }
  return conv_out_(swish(norm_out_(x)));
}

VectorQuantizerImpl::VectorQuantizerImpl(const TokenizerConfig& config) {
  // Uniform init on the scale of a freshly initialised encoder; training re-seeds the codebook
  // from encoder outputs before the first step anyway.
  codebook = register_parameter(
      "codebook", torch::empty({config.codebook_size, config.embedding_dim})
                      .uniform_(-1.0 / config.codebook_size, 1.0 / config.codebook_size));
}

torch::Tensor VectorQuantizerImpl::nearest_ids(const torch::Tensor& latents) const {
  const auto n = latents.size(0), d = latents.size(1), h = latents.size(2), w = latents.size(3);
  torch::Tensor flat = latents.permute({0, 2, 3, 1}).reshape({-1, d});
  torch::Tensor distances = flat.pow(2).sum(1, true) - 2.0 * flat.matmul(codebook.t()) +
                            codebook.pow(2).sum(1).unsqueeze(0);
  return distances.argmin(1).reshape({n, h, w});
}

torch::Tensor VectorQuantizerImpl::lookup(const torch::Tensor& ids) const {
  return F::embedding(ids, codebook).permute({0, 3, 1, 2}).contiguous();
}

Quantized VectorQuantizerImpl::forward(const torch::Tensor& latents) {
  Quantized out;
  {
    torch::NoGradGuard no_grad;
    out.ids = nearest_ids(latents);
  }
  torch::Tensor codes = lookup(out.ids);
  out.codebook_loss = (codes - latents.detach()).pow(2).mean();
  out.commitment_loss = (codes.detach() - latents).pow(2).mean();
  out.latents = latents + (codes - latents).detach();
  return out;
}

VQTokenizerImpl::VQTokenizerImpl(const TokenizerConfig& config) : config_(config) {
  config_.validate();
  encoder = register_module("encoder", Encoder(config_));
  decoder = register_module("decoder", Decoder(config_));
  quantizer = register_module("quantizer", VectorQuantizer(config_));
}

int64_t VQTokenizerImpl::grid_size(int64_t pixels) const {
  const int64_t f = downsample_factor();
  return (pixels + f - 1) / f;
}

torch::Tensor VQTokenizerImpl::pad_to_multiple(const torch::Tensor& images) const {
  const int64_t f = downsample_factor();
  const int64_t pad_h = grid_size(images.size(2)) * f - images.size(2);
  const int64_t pad_w = grid_size(images.size(3)) * f - images.size(3);
  if (pad_h == 0 && pad_w == 0) return images;
  return F::pad(images, F::PadFuncOptions({0, pad_w, 0, pad_h}).mode(torch::kReplicate));
}

torch::Tensor VQTokenizerImpl::encode(const torch::Tensor& images) {
  torch::NoGradGuard no_grad;
  return quantizer->nearest_ids(encoder(pad_to_multiple(images)));
}

torch::Tensor VQTokenizerImpl::decode(const torch::Tensor& ids, int64_t height, int64_t width) {
  torch::NoGradGuard no_grad;
  torch::Tensor images = decoder(quantizer->lookup(ids));
  if (height > 0 || width > 0)
    images = images.slice(2, 0, height > 0 ? height : images.size(2))
                 .slice(3, 0, width > 0 ? width : images.size(3));
  return images;
}

Reconstruction VQTokenizerImpl::forward(const torch::Tensor& images) {
  Reconstruction out;
  out.latents = encoder(images);
  out.quantized = quantizer(out.latents);
  out.images = decoder(out.quantized.latents);
  return out;
}

int64_t count_parameters(const torch::nn::Module& module) {
  int64_t total = 0;
  for (const auto& parameter : module.parameters()) total += parameter.numel();
  return total;
}

}  // namespace maskgit
