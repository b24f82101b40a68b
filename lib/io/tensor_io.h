#pragma once
// Bridges torch tensors and modules to the safetensors container.
#include <torch/torch.h>

#include <map>
#include <string>

#include "io/safetensors.h"

namespace maskgit {

SafetensorsEntry tensor_to_entry(const std::string& name, const torch::Tensor& tensor);
// A CPU tensor owning a copy of the entry's bytes, with the entry's dtype and shape.
torch::Tensor entry_to_tensor(const SafetensorsEntry& entry);

// All parameters and buffers of `module`, keyed by their dotted names.
std::map<std::string, torch::Tensor> module_state(const torch::nn::Module& module);

// Checked before a model is built from a configuration: the weights file at `path` must be a
// regular file of at least 2 bytes per parameter (float16/bfloat16 being the smallest floating
// dtypes) and at most 8 bytes per parameter plus 64 MiB, so that a small file can never make a
// tool allocate a model many times its size, nor a huge (sparse) one be read into memory.
// Throws Error(bad_input) naming the file.
void check_weights_file_size(const std::string& path, int64_t parameter_count);

// Copies tensors from `file` into the module's parameters and buffers. Every module key must
// be present with the same shape (floating dtypes are converted); keys in the file that the
// module lacks are errors too unless `prefix` filtering excludes them. Only entries whose name
// starts with `prefix` are considered, and the prefix is stripped. Throws Error(bad_input)
// naming `source` and the key; floating-point tensors holding NaN or infinity are bad input too.
void load_module_state(torch::nn::Module& module, const SafetensorsFile& file,
                       const std::string& source, const std::string& prefix = "");

// Appends the module's state to `file` under `prefix`.
void append_module_state(SafetensorsFile& file, const torch::nn::Module& module,
                         const std::string& prefix = "");

}  // namespace maskgit
