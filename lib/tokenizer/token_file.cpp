#include "tokenizer/token_file.h"

#include <fmt/format.h>

#include <charconv>
#include <system_error>

#include "common/error.h"
#include "io/atomic_file.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "io/tensor_io.h"

namespace maskgit {
namespace {

bool is_integer_dtype(DType dtype) {
  switch (dtype) {
    case DType::I64: case DType::I32: case DType::I16: case DType::I8: case DType::U8: return true;
    default: return false;
  }
}

}  // namespace


void write_token_file(const std::string& path, const TokenGrid& grid) {
  SafetensorsFile file;
  file.tensors.push_back(tensor_to_entry("ids", grid.ids.to(torch::kInt32)));
  if (grid.labels.defined()) file.tensors.push_back(tensor_to_entry("labels", grid.labels.to(torch::kLong)));
  file.metadata["image_height"] = std::to_string(grid.image_height);
  file.metadata["image_width"] = std::to_string(grid.image_width);
  file.metadata["codebook_size"] = std::to_string(grid.codebook_size);
  write_safetensors(path, file);
}

TokenGrid read_token_file(const std::string& path) { return parse_token_file(read_file_bytes(path), path); }

TokenGrid parse_token_file(const std::string& bytes, const std::string& path) {
  SafetensorsFile file;
  try {
    file = parse_safetensors(bytes, path);
  } catch (const SafetensorsError& e) {
    throw_bad_input(e.what());
  }
  // Whole decimal numbers in 1..limit, digits only (no plus sign, spaces or exponent).
  auto positive = [&](const char* key, int64_t limit) {
    auto it = file.metadata.find(key);
    if (it == file.metadata.end()) throw_bad_input(fmt::format("{}: not a token file (no metadata \"{}\")", path, key));
    const std::string& text = it->second;
    int64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size() || value < 1 || value > limit)
      throw_bad_input(fmt::format("{}: metadata \"{}\" must be a whole number in 1..{}, not \"{}\"", path, key, limit,
                                  text.substr(0, 32)));
    return value;
  };
  TokenGrid grid;
  // The largest picture the tools read or write, and ids that fit the int32 the writer stores.
  grid.image_height = positive("image_height", kMaxImageSide);
  grid.image_width = positive("image_width", kMaxImageSide);
  grid.codebook_size = positive("codebook_size", int64_t{1} << 31);
  const SafetensorsEntry* ids = file.find("ids");
  if (!ids) throw_bad_input(fmt::format("{}: not a token file (no \"ids\" tensor)", path));
  if (ids->shape.size() != 3) throw_bad_input(fmt::format("{}: \"ids\" must be [N, h, w]", path));
  if (!is_integer_dtype(ids->dtype))
    throw_bad_input(fmt::format("{}: \"ids\" must be an integer tensor, not {}", path, dtype_name(ids->dtype)));
  if (ids->shape[0] < 1 || ids->shape[1] < 1 || ids->shape[2] < 1)
    throw_bad_input(fmt::format("{}: \"ids\" holds no grid ([{}, {}, {}])", path, ids->shape[0], ids->shape[1],
                                ids->shape[2]));
  // A token covers at least one pixel.
  if (ids->shape[1] > grid.image_height || ids->shape[2] > grid.image_width)
    throw_bad_input(fmt::format("{}: an \"ids\" grid of {}x{} tokens cannot cover a {}x{} image", path, ids->shape[2],
                                ids->shape[1], grid.image_width, grid.image_height));
  grid.ids = entry_to_tensor(*ids).to(torch::kLong);
  if (grid.ids.numel() > 0 && (grid.ids.min().item<int64_t>() < 0 || grid.ids.max().item<int64_t>() >= grid.codebook_size))
    throw_bad_input(fmt::format("{}: ids outside [0, {})", path, grid.codebook_size));
  if (const SafetensorsEntry* labels = file.find("labels")) {
    if (!is_integer_dtype(labels->dtype))
      throw_bad_input(fmt::format("{}: \"labels\" must be an integer tensor, not {}", path, dtype_name(labels->dtype)));
    if (labels->shape.size() != 1 || labels->shape[0] != ids->shape[0])
      throw_bad_input(fmt::format("{}: \"labels\" must be [N] with N matching \"ids\"", path));
    grid.labels = entry_to_tensor(*labels).to(torch::kLong);
    if (grid.labels.numel() > 0 && grid.labels.min().item<int64_t>() < 0)
      throw_bad_input(fmt::format("{}: \"labels\" holds a negative class", path));
  }
  return grid;
}

}  // namespace maskgit
