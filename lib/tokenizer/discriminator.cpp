#include "tokenizer/discriminator.h"

#include <fmt/format.h>

#include <stdexcept>

namespace maskgit {

void DiscriminatorConfig::validate(const std::string& path) const {
  auto require = [&](bool ok, const char* field, const std::string& what) {
    if (!ok) throw std::runtime_error(fmt::format("{}.{} {}", path, field, what));
  };
  require(channels >= 1 && channels <= 4, "channels", "must be 1..4");
  require(filters >= 1 && filters <= 1024, "filters", "must be 1..1024");
  require(layers >= 1 && layers <= 6, "layers", "must be 1..6");
  require((filters << (layers - 1)) <= 8192, "filters", "doubled at every layer must stay at most 8192");
}

Json DiscriminatorConfig::to_json() const {
  return Json{{"channels", channels}, {"filters", filters}, {"layers", layers}};
}

DiscriminatorConfig DiscriminatorConfig::from_json(const Json& json, const std::string& path) {
  if (!json.is_object()) throw std::runtime_error(path + " must be an object");
  for (auto it = json.begin(); it != json.end(); ++it)
    if (it.key() != "channels" && it.key() != "filters" && it.key() != "layers")
      throw std::runtime_error(fmt::format("{}.{} is not a known field", path, it.key()));
  DiscriminatorConfig config;
  auto field = [&](const char* name, int64_t& value) {
    const auto it = json.find(name);
    if (it == json.end() || !it->is_number_integer())
      throw std::runtime_error(fmt::format("{}.{} must be an integer", path, name));
    value = it->get<int64_t>();
  };
  field("channels", config.channels);
  field("filters", config.filters);
  field("layers", config.layers);
  config.validate(path);
  return config;
}

PatchDiscriminatorImpl::PatchDiscriminatorImpl(const DiscriminatorConfig& config) : config_(config) {
  config_.validate();
  int64_t in = config_.channels, out = config_.filters;
  for (int64_t i = 0; i < config_.layers; ++i) {
    convs_.push_back(register_module(fmt::format("Conv_{}", i),
                                     torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 4).stride(2).padding(1))));
    if (i > 0)
      norms_.push_back(register_module(fmt::format("GroupNorm_{}", i - 1),
                                       torch::nn::GroupNorm(torch::nn::GroupNormOptions(std::min<int64_t>(8, out), out))));
    in = out;
    out *= 2;
  }
  conv_out_ = register_module("Conv_out", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, 1, 3).padding(1)));
}

torch::Tensor PatchDiscriminatorImpl::forward(const torch::Tensor& images) {
  torch::Tensor x = images * 2.0 - 1.0;
  for (size_t i = 0; i < convs_.size(); ++i) {
    x = convs_[i](x);
    if (i > 0) x = norms_[i - 1](x);
    x = torch::leaky_relu(x, 0.2);
  }
  return conv_out_(x);
}

torch::Tensor discriminator_loss(const torch::Tensor& real_logits, const torch::Tensor& fake_logits) {
  return torch::softplus(-real_logits).mean() + torch::softplus(fake_logits).mean();
}

torch::Tensor generator_adversarial_loss(const torch::Tensor& fake_logits) { return torch::softplus(-fake_logits).mean(); }

torch::Tensor r1_penalty(const torch::Tensor& real_logits, const torch::Tensor& real) {
  // Each image's score is the mean of its patch logits (as the losses average them): summed over
  // the batch, its gradient at each image is that image's own.
  const torch::Tensor scores = real_logits.dim() > 1 ? real_logits.flatten(1).mean(1) : real_logits;
  const torch::Tensor gradient =
      torch::autograd::grad({scores.sum()}, {real}, {}, /*retain_graph=*/true, /*create_graph=*/true)[0];
  return gradient.pow(2).flatten(1).sum(1).mean();
}

}  // namespace maskgit
