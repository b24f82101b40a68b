#include "transformer/transformer.h"

#include <fmt/format.h>

#include "compat/torch_compat.h"
#include "transformer/attention.h"

namespace maskgit {
namespace nn = torch::nn;

namespace {

constexpr double kLayerNormEps = 1e-12;

nn::LayerNorm layer_norm(int64_t size) {
  return nn::LayerNorm(nn::LayerNormOptions({size}).eps(kLayerNormEps));
}

torch::Tensor maybe_dropout(const torch::Tensor& x, double p, bool training) {
  return training && p > 0 ? torch::dropout(x, p, true) : x;
}

}  // namespace

SelfAttentionImpl::SelfAttentionImpl(int64_t hidden, int64_t heads, double attention_dropout)
    : heads_(heads), attention_dropout_(attention_dropout) {
  query_ = register_module("query", nn::Linear(hidden, hidden));
  key_ = register_module("key", nn::Linear(hidden, hidden));
  value_ = register_module("value", nn::Linear(hidden, hidden));
  out_ = register_module("out", nn::Linear(hidden, hidden));
}

torch::Tensor SelfAttentionImpl::forward(const torch::Tensor& x) {
  const int64_t batch = x.size(0), length = x.size(1), hidden = x.size(2);
  // Feature index = head · head_dim + d, as in the release's (hidden, heads, head_dim) kernels.
  auto split_heads = [&](const torch::Tensor& t) {
    return t.view({batch, length, heads_, hidden / heads_}).transpose(1, 2);
  };
  torch::Tensor attended = attend(split_heads(query_(x)), split_heads(key_(x)), split_heads(value_(x)),
                                  attention_dropout_, is_training());
  return out_(attended.transpose(1, 2).reshape({batch, length, hidden}));
}

AttentionBlockImpl::AttentionBlockImpl(const TransformerConfig& config) : dropout_(config.dropout) {
  self_attention_ = register_module("self_attention", SelfAttention(config.hidden_size, config.num_heads,
                                                                    config.attention_dropout));
  output_norm_ = register_module("attention_output_ln", layer_norm(config.hidden_size));
}

torch::Tensor AttentionBlockImpl::forward(const torch::Tensor& x) {
  return output_norm_(x + maybe_dropout(self_attention_(x), dropout_, is_training()));
}

MlpBlockImpl::MlpBlockImpl(const TransformerConfig& config) : dropout_(config.dropout) {
  intermediate_ = register_module("intermediate_output", nn::Linear(config.hidden_size, config.mlp_dim));
  output_ = register_module("layer_output", nn::Linear(config.mlp_dim, config.hidden_size));
  output_norm_ = register_module("layer_output_ln", layer_norm(config.hidden_size));
}

torch::Tensor MlpBlockImpl::forward(const torch::Tensor& x) {
  torch::Tensor h = output_(compat::gelu_tanh(intermediate_(x)));
  return output_norm_(x + maybe_dropout(h, dropout_, is_training()));
}

TransformerLayerImpl::TransformerLayerImpl(const TransformerConfig& config) {
  attention_ = register_module("Attention_0", AttentionBlock(config));
  mlp_ = register_module("Mlp_0", MlpBlock(config));
}

torch::Tensor TransformerLayerImpl::forward(const torch::Tensor& x) { return mlp_(attention_(x)); }

EmbeddingsImpl::EmbeddingsImpl(const TransformerConfig& config) : dropout_(config.dropout) {
  word_embeddings = register_module("word_embeddings", nn::Embedding(config.vocabulary_size(), config.hidden_size));
  position_embeddings_ =
      register_module("position_embeddings", nn::Embedding(config.sequence_length(), config.hidden_size));
  norm_ = register_module("embeddings_ln", layer_norm(config.hidden_size));
}

torch::Tensor EmbeddingsImpl::forward(const torch::Tensor& ids) {
  torch::Tensor positions = torch::arange(ids.size(1), ids.options().dtype(torch::kLong));
  torch::Tensor x = word_embeddings(ids) + position_embeddings_(positions).unsqueeze(0);
  return maybe_dropout(norm_(x), dropout_, is_training());
}

MlmHeadImpl::MlmHeadImpl(const TransformerConfig& config) {
  dense_ = register_module("mlm_dense", nn::Linear(config.hidden_size, config.hidden_size));
  norm_ = register_module("mlm_ln", layer_norm(config.hidden_size));
  bias_ = register_parameter("mlm_bias", torch::zeros({config.vocabulary_size()}));
}

torch::Tensor MlmHeadImpl::forward(const torch::Tensor& x, const torch::Tensor& word_embeddings) {
  torch::Tensor h = norm_(compat::gelu_tanh(dense_(x)));
  return torch::matmul(h, word_embeddings.t()) + bias_.slice(0, 0, word_embeddings.size(0));
}

BidirectionalTransformerImpl::BidirectionalTransformerImpl(const TransformerConfig& config) : config_(config) {
  config_.validate();
  embeddings_ = register_module("Embed_0", Embeddings(config_));
  for (int64_t i = 0; i < config_.num_layers; ++i)
    layers_.push_back(register_module(fmt::format("TransformerLayer_{}", i), TransformerLayer(config_)));
  head_ = register_module("MlmLayer_0", MlmHead(config_));
}

torch::Tensor BidirectionalTransformerImpl::forward(const torch::Tensor& ids) {
  return head_(hidden_states(ids), embeddings_->word_embeddings->weight);
}

torch::Tensor BidirectionalTransformerImpl::hidden_states(const torch::Tensor& ids) {
  torch::Tensor x = embeddings_(ids);
  for (auto& layer : layers_) x = layer(x);
  return x;
}

torch::Tensor BidirectionalTransformerImpl::image_logits(const torch::Tensor& image_ids,
                                                         const torch::Tensor& class_tokens) {
  torch::Tensor ids = torch::cat({class_tokens.to(image_ids.device()).unsqueeze(1), image_ids}, 1);
  // The head only for image positions and image codes: the same values as forward()'s slice,
  // computed contiguously and without the class, mask and no-class columns.
  return head_(hidden_states(ids).slice(1, 1), embeddings_->word_embeddings->weight.slice(0, 0, config_.codebook_size));
}

void BidirectionalTransformerImpl::reset_parameters_like_release(uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto generator = compat::make_cpu_generator(seed);
  auto truncated_normal = [&](torch::Tensor& parameter) {
    torch::Tensor values = torch::randn(parameter.sizes(), generator) * 0.02;
    // Redraw values beyond ±2σ until none are left.
    for (torch::Tensor outside = values.abs() > 0.04; outside.any().item<bool>(); outside = values.abs() > 0.04)
      values = torch::where(outside, torch::randn(values.sizes(), generator) * 0.02, values);
    parameter.copy_(values);
  };
  for (auto& item : named_parameters()) {
    const std::string& name = item.key();
    torch::Tensor& parameter = item.value();
    const bool is_norm = name.find("_ln.") != std::string::npos;
    if (is_norm) {
      if (name.size() >= 6 && name.compare(name.size() - 6, 6, "weight") == 0) parameter.fill_(1.0);
      else parameter.zero_();
    } else if (parameter.dim() >= 2) {
      truncated_normal(parameter);
    } else {
      parameter.zero_();
    }
  }
}

}  // namespace maskgit
