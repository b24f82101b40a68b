#include "io/tensor_io.h"

#include <fmt/format.h>

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <set>
#include <utility>
#include <vector>

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

namespace {

bool is_floating(DType dtype) {
  return dtype == DType::F64 || dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16;
}

// Whether no element of `count` IEEE words has the all-ones exponent (`exponent`) of NaN and
// infinity. Blocks without early exit inside, so the compiler vectorises them.
template <typename Word>
bool words_finite(const unsigned char* data, uint64_t count, Word exponent) {
  constexpr uint64_t kBlock = 4096;
  for (uint64_t start = 0; start < count; start += kBlock) {
    const uint64_t end = std::min(count, start + kBlock);
    bool non_finite = false;
    for (uint64_t i = start; i < end; ++i) {
      Word word;
      std::memcpy(&word, data + i * sizeof(Word), sizeof word);
      non_finite |= (word & exponent) == exponent;
    }
    if (non_finite) return false;
  }
  return true;
}

// Whether `bytes` bytes of little-endian `dtype` values hold no NaN or infinity (integers: true).
bool all_finite(const void* data, uint64_t bytes, DType dtype) {
  const auto* raw = static_cast<const unsigned char*>(data);
  switch (dtype) {
    case DType::F64: return words_finite<uint64_t>(raw, bytes / 8, uint64_t{0x7ff0000000000000});
    case DType::F32: return words_finite<uint32_t>(raw, bytes / 4, uint32_t{0x7f800000});
    case DType::F16: return words_finite<uint16_t>(raw, bytes / 2, uint16_t{0x7c00});
    case DType::BF16: return words_finite<uint16_t>(raw, bytes / 2, uint16_t{0x7f80});
    default: return true;
  }
}

// One tensor coming from a file, as its header describes it, and how to get its bytes.
struct IncomingTensor {
  const std::string* name = nullptr;
  DType dtype = DType::F32;
  const std::vector<int64_t>* shape = nullptr;
  uint64_t size = 0;
  std::function<void(void*)> read;  // writes `size` bytes to the destination
};

// load_module_state's work for either kind of source: every check on names, shapes and dtypes
// first, then each tensor read once, straight into its parameter when the bytes can go there
// as they are, else through one temporary.
void load_state(torch::nn::Module& module, const std::vector<IncomingTensor>& tensors, const std::string& source,
                const std::string& prefix) {
  auto state = module_state(module);
  std::vector<std::pair<const IncomingTensor*, torch::Tensor*>> plan;
  plan.reserve(state.size());
  for (const IncomingTensor& incoming : tensors) {
    const std::string& name = *incoming.name;
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    auto it = state.find(name.substr(prefix.size()));
    if (it == state.end())
      throw_bad_input(fmt::format("{}: unexpected tensor \"{}\" (the model configuration has no such "
                                  "parameter)", source, name));
    torch::Tensor& target = it->second;
    if (*incoming.shape != std::vector<int64_t>(target.sizes().begin(), target.sizes().end()))
      throw_bad_input(fmt::format("{}: tensor \"{}\" has shape {}, the model configuration expects {}",
                                  source, name, shape_string(*incoming.shape), shape_string(target.sizes())));
    // A hand-made SafetensorsFile can hold other bytes than its shape needs (a parsed one never).
    if (incoming.size != static_cast<uint64_t>(target.numel()) * dtype_size(incoming.dtype))
      throw_bad_input(fmt::format("{}: tensor \"{}\" has {} data bytes, its shape {} of {} needs {}", source, name,
                                  incoming.size, shape_string(*incoming.shape), dtype_name(incoming.dtype),
                                  static_cast<uint64_t>(target.numel()) * dtype_size(incoming.dtype)));
    if (is_floating(incoming.dtype) != target.is_floating_point())
      throw_bad_input(fmt::format("{}: tensor \"{}\" has dtype {}, expected {}", source, name,
                                  dtype_name(incoming.dtype), c10::toString(target.scalar_type())));
    plan.emplace_back(&incoming, &target);
  }
  if (plan.size() != state.size()) {
    std::set<std::string> present;
    for (const auto& item : plan) present.insert(item.first->name->substr(prefix.size()));
    for (const auto& item : state) {
      if (!present.count(item.first))
        throw_bad_input(fmt::format("{}: missing tensor \"{}{}\"", source, prefix, item.first));
    }
  }

  torch::NoGradGuard no_grad;
  for (const auto& [incoming, target] : plan) {
    const torch::ScalarType file_type = to_scalar_type(incoming->dtype);
    torch::Tensor staging;  // only when the bytes cannot go straight into the parameter
    void* destination = nullptr;
    if (target->device().is_cpu() && target->scalar_type() == file_type && target->is_contiguous()) {
      destination = target->data_ptr();
    } else {
      staging = torch::empty(*incoming->shape, torch::TensorOptions().dtype(file_type));
      destination = staging.data_ptr();
    }
    if (incoming->size > 0) incoming->read(destination);
    // NaN or infinite weights give black images or sampling errors much later: refuse them here.
    if (!all_finite(destination, incoming->size, incoming->dtype))
      throw_bad_input(fmt::format("{}: tensor \"{}\" holds non-finite values (NaN or infinity)", source,
                                  *incoming->name));
    if (staging.defined()) target->copy_(staging);
  }
}

}  // namespace

void load_module_state(torch::nn::Module& module, const SafetensorsFile& file,
                       const std::string& source, const std::string& prefix) {
  std::vector<IncomingTensor> tensors;
  tensors.reserve(file.tensors.size());
  for (const SafetensorsEntry& entry : file.tensors) {
    IncomingTensor incoming;
    incoming.name = &entry.name;
    incoming.dtype = entry.dtype;
    incoming.shape = &entry.shape;
    incoming.size = entry.data.size();
    incoming.read = [&entry](void* destination) { std::memcpy(destination, entry.data.data(), entry.data.size()); };
    tensors.push_back(std::move(incoming));
  }
  load_state(module, tensors, source, prefix);
}

void load_module_state(torch::nn::Module& module, const SafetensorsReader& reader, const std::string& prefix) {
  std::vector<IncomingTensor> tensors;
  tensors.reserve(reader.header().tensors.size());
  for (const SafetensorsTensorInfo& info : reader.header().tensors) {
    IncomingTensor incoming;
    incoming.name = &info.name;
    incoming.dtype = info.dtype;
    incoming.shape = &info.shape;
    incoming.size = info.size;
    incoming.read = [&reader, &info](void* destination) { reader.read(info, destination); };
    tensors.push_back(std::move(incoming));
  }
  load_state(module, tensors, reader.path(), prefix);
}

void append_module_state(SafetensorsFile& file, const torch::nn::Module& module,
                         const std::string& prefix) {
  for (const auto& item : module_state(module)) file.tensors.push_back(tensor_to_entry(prefix + item.first, item.second));
}

std::vector<SafetensorsTensorSource> module_state_sources(const torch::nn::Module& module, const std::string& prefix) {
  std::vector<SafetensorsTensorSource> sources;
  for (const auto& [name, tensor] : module_state(module)) {
    SafetensorsTensorSource source;
    source.name = prefix + name;
    source.dtype = to_dtype(tensor.scalar_type());
    source.shape.assign(tensor.sizes().begin(), tensor.sizes().end());
    source.write_data = [held = tensor.detach()](const ByteSink& sink) {
      if (held.numel() == 0) return;
      // Safetensors is little-endian; so is every machine we build for (x86-64, aarch64).
      const torch::Tensor cpu = held.device().is_cpu() && held.is_contiguous() ? held : held.to(torch::kCPU).contiguous();
      sink(std::string_view(static_cast<const char*>(cpu.data_ptr()),
                            static_cast<size_t>(cpu.numel()) * cpu.element_size()));
    };
    sources.push_back(std::move(source));
  }
  return sources;
}

}  // namespace maskgit
