#pragma once
// The one attention function every layer calls: LibTorch's fused scaled-dot-product attention
// where the version has it (2.x), a plain implementation otherwise. No mask: MaskGIT attends
// in both directions over the whole sequence.
#include <torch/torch.h>

namespace maskgit {

// q, k, v: [B, heads, L, head_dim] → [B, heads, L, head_dim], scale 1/sqrt(head_dim).
torch::Tensor attend(const torch::Tensor& query, const torch::Tensor& key, const torch::Tensor& value,
                     double dropout, bool training);
// The plain formula, always available (tests compare it with attend()).
torch::Tensor attend_plain(const torch::Tensor& query, const torch::Tensor& key, const torch::Tensor& value,
                           double dropout, bool training);
bool attention_is_fused();

}  // namespace maskgit
