#include "tokenizer/token_file.h"

#include <fmt/format.h>

#include "common/error.h"
#include "io/safetensors.h"
#include "io/tensor_io.h"

namespace maskgit {

void write_token_file(const std::string& path, const TokenGrid& grid) {
  SafetensorsFile file;
  file.tensors.push_back(tensor_to_entry("ids", grid.ids.to(torch::kInt32)));
  if (grid.labels.defined()) file.tensors.push_back(tensor_to_entry("labels", grid.labels.to(torch::kLong)));
  file.metadata["image_height"] = std::to_string(grid.image_height);
  file.metadata["image_width"] = std::to_string(grid.image_width);
  file.metadata["codebook_size"] = std::to_string(grid.codebook_size);
  write_safetensors(path, file);
}

TokenGrid read_token_file(const std::string& path) {
  SafetensorsFile file;
  try {
    file = read_safetensors(path);
  } catch (const SafetensorsError& e) {
    throw_bad_input(e.what());
  }
  auto positive = [&](const char* key) {
    auto it = file.metadata.find(key);
    if (it == file.metadata.end()) throw_bad_input(fmt::format("{}: not a token file (no metadata \"{}\")", path, key));
    try {
      size_t used = 0;
      const int64_t value = std::stoll(it->second, &used);
      if (used == it->second.size() && value > 0) return value;
    } catch (const std::exception&) {
    }
    throw_bad_input(fmt::format("{}: metadata \"{}\" must be a positive integer", path, key));
  };
  TokenGrid grid;
  grid.image_height = positive("image_height");
  grid.image_width = positive("image_width");
  grid.codebook_size = positive("codebook_size");
  const SafetensorsEntry* ids = file.find("ids");
  if (!ids) throw_bad_input(fmt::format("{}: not a token file (no \"ids\" tensor)", path));
  if (ids->shape.size() != 3) throw_bad_input(fmt::format("{}: \"ids\" must be [N, h, w]", path));
  grid.ids = entry_to_tensor(*ids);
  if (grid.ids.is_floating_point() || grid.ids.scalar_type() == torch::kBool)
    throw_bad_input(fmt::format("{}: \"ids\" must be an integer tensor", path));
  grid.ids = grid.ids.to(torch::kLong);
  if (grid.ids.numel() > 0 && (grid.ids.min().item<int64_t>() < 0 || grid.ids.max().item<int64_t>() >= grid.codebook_size))
    throw_bad_input(fmt::format("{}: ids outside [0, {})", path, grid.codebook_size));
  if (const SafetensorsEntry* labels = file.find("labels")) {
    grid.labels = entry_to_tensor(*labels).to(torch::kLong);
    if (grid.labels.dim() != 1 || grid.labels.size(0) != grid.ids.size(0))
      throw_bad_input(fmt::format("{}: \"labels\" must be [N] with N matching \"ids\"", path));
  }
  return grid;
}

}  // namespace maskgit
