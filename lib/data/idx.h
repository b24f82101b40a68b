#pragma once
// The IDX format of (Fashion-)MNIST: magic 0x00 0x00 <type> <ndim>, ndim big-endian uint32
// sizes, then the data. Gzipped files (magic 1f 8b) are read transparently.
#include <torch/torch.h>

#include <string>

namespace maskgit {

// Reads an unsigned-byte IDX file of any rank as a uint8 tensor with the stored shape.
// Throws Error(bad_input) naming the file for: missing file, bad gzip stream, bad magic,
// unsupported element type, zero-sized dimension, data shorter or longer than the header says.
torch::Tensor read_idx_u8(const std::string& path);
// The same for a file's bytes already in memory; `source` (a path) names it in messages.
torch::Tensor parse_idx_u8(const std::string& bytes, const std::string& source);

// Images: [N, 1, H, W] float in [0,1] from an idx3 file; optionally only the first `limit`.
torch::Tensor read_idx_images(const std::string& path, int64_t limit = -1);
// Labels: [N] int64 from an idx1 file; optionally only the first `limit`.
torch::Tensor read_idx_labels(const std::string& path, int64_t limit = -1);

}  // namespace maskgit
