#include "io/tensor_io.h"

#include <fmt/format.h>

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace maskgit {
namespace {

torch::ScalarType to_scalar_type(DType dtype) {
  switch (dtype) {
    case DType::F64: return torch::kFloat64;
    case DType::F32: return torch::kFloat32;
    case DType::F16: return torch::kFloat16;
    case DType::BF16: return torch::kBFloat16;
    case DType::I64: return torch::kInt64;
    case DType::I32: return torch::kInt32;
    case DType::I16: return torch::kInt16;
    case DType::I8: return torch::kInt8;
    case DType::U8: return torch::kUInt8;
    case DType::BOOL: return torch::kBool;
  }
  throw std::invalid_argument("unknown dtype");
}

DType to_dtype(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat64: return DType::F64;
    case torch::kFloat32: return DType::F32;
    case torch::kFloat16: return DType::F16;
    case torch::kBFloat16: return DType::BF16;
    case torch::kInt64: return DType::I64;
    case torch::kInt32: return DType::I32;
    case torch::kInt16: return DType::I16;
    case torch::kInt8: return DType::I8;
    case torch::kUInt8: return DType::U8;
    case torch::kBool: return DType::BOOL;
    default: break;
  }
  throw std::invalid_argument(fmt::format("tensor dtype {} cannot be stored in safetensors",
                                          c10::toString(type)));
}

std::string shape_string(torch::IntArrayRef shape) {
  return fmt::format("[{}]", fmt::join(shape.begin(), shape.end(), ", "));
}

}  // namespace

void check_weights_file_size(const std::string& path, int64_t parameter_count) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0)
    throw_bad_input(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  if (!S_ISREG(info.st_mode)) throw_bad_input(fmt::format("{}: not a regular file", path));
  // At most 8 bytes a parameter (float64) plus a generous header: a sparse or padded file is
  // never read into memory.
  if (static_cast<int64_t>(info.st_size) > 8 * parameter_count + (int64_t{64} << 20))
    throw_bad_input(fmt::format("{}: {} bytes, far more than the {} parameters its configuration describes take", path,
                                static_cast<int64_t>(info.st_size), parameter_count));
  if (static_cast<int64_t>(info.st_size) < 2 * parameter_count)
    throw_bad_input(fmt::format("{}: {} bytes cannot hold the {} parameters its configuration describes", path,
                                static_cast<int64_t>(info.st_size), parameter_count));
}

SafetensorsEntry tensor_to_entry(const std::string& name, const torch::Tensor& tensor) {
  // Safetensors is little-endian; so is every machine we build for (x86-64, aarch64).
  torch::Tensor contiguous = tensor.detach().to(torch::kCPU).contiguous();
  SafetensorsEntry entry;
  entry.name = name;
  entry.dtype = to_dtype(contiguous.scalar_type());
  entry.shape.assign(contiguous.sizes().begin(), contiguous.sizes().end());
  entry.data.assign(static_cast<const char*>(contiguous.data_ptr()),
                    static_cast<size_t>(contiguous.numel()) * contiguous.element_size());
  return entry;
}

torch::Tensor entry_to_tensor(const SafetensorsEntry& entry) {
  torch::Tensor tensor = torch::empty(entry.shape, torch::TensorOptions().dtype(to_scalar_type(entry.dtype)));
  if (!entry.data.empty()) std::memcpy(tensor.data_ptr(), entry.data.data(), entry.data.size());
  return tensor;
}

std::map<std::string, torch::Tensor> module_state(const torch::nn::Module& module) {
  std::map<std::string, torch::Tensor> state;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) state[item.key()] = item.value();
  for (const auto& item : module.named_buffers(/*recurse=*/true)) state[item.key()] = item.value();
  return state;
}

void load_module_state(torch::nn::Module& module, const SafetensorsFile& file,
                       const std::string& source, const std::string& prefix) {
  auto state = module_state(module);
  size_t matched = 0;
  for (const auto& entry : file.tensors) {
    if (entry.name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string key = entry.name.substr(prefix.size());
    auto it = state.find(key);
    if (it == state.end())
      throw_bad_input(fmt::format("{}: unexpected tensor \"{}\" (the model configuration has no such "
                                  "parameter)", source, entry.name));
    torch::Tensor& target = it->second;
    if (entry.shape != std::vector<int64_t>(target.sizes().begin(), target.sizes().end()))
      throw_bad_input(fmt::format("{}: tensor \"{}\" has shape {}, the model configuration expects {}",
                                  source, entry.name, shape_string(entry.shape),
                                  shape_string(target.sizes())));
    torch::Tensor value = entry_to_tensor(entry);
    if (value.is_floating_point() != target.is_floating_point())
      throw_bad_input(fmt::format("{}: tensor \"{}\" has dtype {}, expected {}", source, entry.name,
                                  dtype_name(entry.dtype), c10::toString(target.scalar_type())));
    // NaN or infinite weights give black images or sampling errors much later: refuse them here.
    if (value.is_floating_point() && !torch::isfinite(value).all().item<bool>())
      throw_bad_input(fmt::format("{}: tensor \"{}\" holds non-finite values (NaN or infinity)", source, entry.name));
    torch::NoGradGuard no_grad;
    target.copy_(value);
    ++matched;
  }
  if (matched != state.size()) {
    for (const auto& item : state) {
      if (!file.find(prefix + item.first))
        throw_bad_input(fmt::format("{}: missing tensor \"{}{}\"", source, prefix, item.first));
    }
  }
}

void append_module_state(SafetensorsFile& file, const torch::nn::Module& module,
                         const std::string& prefix) {
  for (const auto& item : module_state(module)) file.tensors.push_back(tensor_to_entry(prefix + item.first, item.second));
}

}  // namespace maskgit
