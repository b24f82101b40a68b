#include "transformer/attention.h"

#include <cmath>

#include "compat/torch_compat.h"

namespace maskgit {

torch::Tensor attend_plain(const torch::Tensor& query, const torch::Tensor& key, const torch::Tensor& value,
                           double dropout, bool training) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(query.size(-1)));
  torch::Tensor weights = torch::softmax(torch::matmul(query, key.transpose(-2, -1)) * scale, -1);
  if (training && dropout > 0) weights = torch::dropout(weights, dropout, true);
  return torch::matmul(weights, value);
}

torch::Tensor attend(const torch::Tensor& query, const torch::Tensor& key, const torch::Tensor& value,
                     double dropout, bool training) {
  return compat::fused_attention_or(query, key, value, training ? dropout : 0.0,
                                    [&] { return attend_plain(query, key, value, dropout, training); });
}

bool attention_is_fused() { return MASKGIT_HAS_FUSED_SDPA; }

}  // namespace maskgit
