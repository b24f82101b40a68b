#pragma once
// The bidirectional (BERT-style, post-LayerNorm) transformer of docs/model.md §3. Module
// names mirror the release's Flax layout (TransformerLayer_3.Attention_0.self_attention.query
// ↔ TransformerLayer_3/Attention_0/self_attention/query) so a converter maps keys one to one.
#include <torch/torch.h>

#include <vector>

#include "transformer/config.h"

namespace maskgit {

class SelfAttentionImpl : public torch::nn::Module {
 public:
  SelfAttentionImpl(int64_t hidden, int64_t heads, double attention_dropout);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  int64_t heads_;
  double attention_dropout_;
  torch::nn::Linear query_{nullptr}, key_{nullptr}, value_{nullptr}, out_{nullptr};
};
TORCH_MODULE(SelfAttention);

class AttentionBlockImpl : public torch::nn::Module {  // Flax: Attention_0
 public:
  explicit AttentionBlockImpl(const TransformerConfig& config);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  double dropout_;
  SelfAttention self_attention_{nullptr};
  torch::nn::LayerNorm output_norm_{nullptr};
};
TORCH_MODULE(AttentionBlock);

class MlpBlockImpl : public torch::nn::Module {  // Flax: Mlp_0
 public:
  explicit MlpBlockImpl(const TransformerConfig& config);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  double dropout_;
  torch::nn::Linear intermediate_{nullptr}, output_{nullptr};
  torch::nn::LayerNorm output_norm_{nullptr};
};
TORCH_MODULE(MlpBlock);

class TransformerLayerImpl : public torch::nn::Module {
 public:
  explicit TransformerLayerImpl(const TransformerConfig& config);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  AttentionBlock attention_{nullptr};
  MlpBlock mlp_{nullptr};
};
TORCH_MODULE(TransformerLayer);

class EmbeddingsImpl : public torch::nn::Module {  // Flax: Embed_0
 public:
  explicit EmbeddingsImpl(const TransformerConfig& config);
  torch::Tensor forward(const torch::Tensor& ids);

  torch::nn::Embedding word_embeddings{nullptr};

 private:
  double dropout_;
  torch::nn::Embedding position_embeddings_{nullptr};
  torch::nn::LayerNorm norm_{nullptr};
};
TORCH_MODULE(Embeddings);

class MlmHeadImpl : public torch::nn::Module {  // Flax: MlmLayer_0
 public:
  explicit MlmHeadImpl(const TransformerConfig& config);
  // Logits tied to the input embedding table, plus a free bias: x [B, L, hidden] and the first
  // V' rows of the embedding table [V', hidden] → [B, L, V'] (V' = V for training; the image
  // codes only, V' = K, when decoding).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& word_embeddings);

 private:
  torch::nn::Linear dense_{nullptr};
  torch::nn::LayerNorm norm_{nullptr};
  torch::Tensor bias_;
};
TORCH_MODULE(MlmHead);

class BidirectionalTransformerImpl : public torch::nn::Module {
 public:
  explicit BidirectionalTransformerImpl(const TransformerConfig& config);

  const TransformerConfig& config() const { return config_; }
  // ids [B, 1 + N] (class token first) → logits [B, 1 + N, V].
  torch::Tensor forward(const torch::Tensor& ids);
  // Image ids [B, N] (mask token where unknown) and class tokens [B] → image-code logits
  // [B, N, K] (class, mask and no-class logits sliced away).
  torch::Tensor image_logits(const torch::Tensor& image_ids, const torch::Tensor& class_tokens);
  // The last layer's output [B, 1 + N, hidden] (before the MLM head).
  torch::Tensor hidden_states(const torch::Tensor& ids);

  // Truncated normal (±2σ, σ = 0.02) for embeddings and dense kernels, zero biases.
  void reset_parameters_like_release(uint64_t seed);

 private:
  TransformerConfig config_;
  Embeddings embeddings_{nullptr};
  std::vector<TransformerLayer> layers_;
  MlmHead head_{nullptr};
};
TORCH_MODULE(BidirectionalTransformer);

}  // namespace maskgit
