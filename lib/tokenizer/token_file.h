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
// Validates everything; Error(bad_input) naming the file for: not a safetensors file, metadata
// that is not a whole number (image sides 1..kMaxImageSide, codebook 1..2^31), "ids" not an
// integer [N, h, w] grid of at most one token per pixel, ids outside [0, codebook_size),
// "labels" not integer [N] or negative.
TokenGrid read_token_file(const std::string& path);
// The same for a file's bytes already in memory; `source` (a path) names it in messages.
TokenGrid parse_token_file(const std::string& bytes, const std::string& source);

}  // namespace maskgit
