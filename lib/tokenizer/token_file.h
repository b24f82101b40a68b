#pragma once
// Token files: a safetensors file with "ids" (I32 [N, h, w]) and optional "labels" (I64 [N]),
// plus metadata saying which image size the ids decode to and which codebook they index.
#include <torch/torch.h>

#include <string>

namespace maskgit {

struct TokenGrid {
  torch::Tensor ids;     // [N, h, w] int64
  torch::Tensor labels;  // [N] int64, or undefined
  int64_t image_height = 0;
  int64_t image_width = 0;
  int64_t codebook_size = 0;
};

void write_token_file(const std::string& path, const TokenGrid& grid);
// Validates shape, id range against codebook_size, and metadata; Error(bad_input) naming the file.
TokenGrid read_token_file(const std::string& path);

}  // namespace maskgit
