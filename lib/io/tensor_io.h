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
// be present with the same shape (floating dtypes are converted, a floating tensor never loads
// into an integer one or back); keys in the file that the module lacks are errors too unless
// `prefix` filtering excludes them. Only entries whose name starts with `prefix` are considered,
// and the prefix is stripped. Names, shapes and dtypes are all checked before any value is
// copied; floating-point tensors holding NaN or infinity are refused as each is copied (the
// module is then partly loaded). Throws Error(bad_input) "<source>: ... \"<key>\" ..." naming
// the file and the key.
void load_module_state(torch::nn::Module& module, const SafetensorsFile& file,
                       const std::string& source, const std::string& prefix = "");

// The same from an open file (`reader`, named by its path in messages), reading each tensor's
// bytes once from the file: straight into the parameter's storage when that is a contiguous
// CPU tensor of the file's dtype (a float32 model from a float32 file), otherwise into one
// temporary CPU tensor of the file's dtype and shape, converted and copied into the parameter
// (another dtype, another device). Memory: the module plus at most one tensor. Same checks and
// Error(bad_input) messages as above, all of the header's before any data is read; a file that
// shrinks while it is read throws SafetensorsError(truncated) naming it and the tensor.
void load_module_state(torch::nn::Module& module, const SafetensorsReader& reader, const std::string& prefix = "");

// Appends the module's state to `file` under `prefix` (a CPU copy of every tensor).
void append_module_state(SafetensorsFile& file, const torch::nn::Module& module,
                         const std::string& prefix = "");

// The module's parameters and buffers under `prefix`, as sources for
// write_safetensors(path, sources, metadata): nothing is copied until the file is written, and
// then a contiguous CPU tensor is written from its own storage, any other through one CPU
// contiguous copy at a time. The sources hold references to the tensors (not copies): change
// them before the write and the new values are written. The file is the same as
// write_safetensors of append_module_state's file. Throws std::invalid_argument for a dtype
// safetensors cannot store.
std::vector<SafetensorsTensorSource> module_state_sources(const torch::nn::Module& module,
                                                          const std::string& prefix = "");

}  // namespace maskgit
