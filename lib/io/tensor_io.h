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

// Copies tensors from `file` into the module's parameters and buffers. Every module key must
// be present with the same shape (floating dtypes are converted); keys in the file that the
// module lacks are errors too unless `prefix` filtering excludes them. Only entries whose name
// starts with `prefix` are considered, and the prefix is stripped. Throws Error(bad_input)
// naming `source` and the key.
void load_module_state(torch::nn::Module& module, const SafetensorsFile& file,
                       const std::string& source, const std::string& prefix = "");

// Appends the module's state to `file` under `prefix`.
void append_module_state(SafetensorsFile& file, const torch::nn::Module& module,
                         const std::string& prefix = "");

}  // namespace maskgit
