#pragma once
// Shared by the harnesses of loaders that return tensors.
#include <torch/torch.h>

#include <string>

#include "fuzz_common.h"

namespace maskgit::fuzz {

// One intra-op thread: inputs are tiny, and the machine's cores belong to the other harnesses.
inline void init_torch() { torch::set_num_threads(1); }

inline std::string shape_text(const torch::Tensor& tensor) {
  std::string text = "[";
  for (int64_t d = 0; d < tensor.dim(); ++d) text += (d ? ", " : "") + std::to_string(tensor.size(d));
  return text + "]";
}

}  // namespace maskgit::fuzz
