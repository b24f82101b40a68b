#pragma once
// The safetensors container: 8-byte little-endian header length N, N bytes of JSON header,
// then the raw little-endian tensor data. Torch-free on purpose: io/tensor_io.h converts.
//
// The reader validates everything and every failure has its own message (see
// SafetensorsError::Kind), following llama.cpp's GGUF loader: a corrupt file is named and
// explained, never half-loaded.
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace maskgit {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

const char* dtype_name(DType dtype);     // "F32", ...
size_t dtype_size(DType dtype);          // bytes per element
bool parse_dtype(const std::string& name, DType* out);

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::string data;  // raw little-endian bytes, size == numel * dtype_size
};

struct SafetensorsFile {
  std::vector<SafetensorsEntry> tensors;       // in data-offset order
  std::map<std::string, std::string> metadata;  // "__metadata__" (string → string)

  const SafetensorsEntry* find(const std::string& name) const;
};

class SafetensorsError : public std::runtime_error {
 public:
  enum class Kind {
    truncated,          // file shorter than the 8-byte length prefix
    bad_header_length,  // N is zero, or 8 + N exceeds the file size, or absurdly large
    bad_json,           // header is not valid JSON (message has the byte offset)
    bad_structure,      // header is not an object / entry is not an object / missing fields
    bad_metadata,       // "__metadata__" is not an object of strings
    duplicate_name,     // the same tensor name twice
    bad_dtype,          // dtype string unknown
    bad_shape,          // shape not a list of non-negative integers
    bad_offsets,        // data_offsets not [begin, end] with begin <= end
    offsets_out_of_range,  // end beyond the data section
    size_mismatch,      // numel * dtype size != end - begin
    overlap,            // two tensors' byte ranges overlap
    gap,                // bytes between tensors or after the last one are not covered
  };
  SafetensorsError(Kind kind, const std::string& message)
      : std::runtime_error(message), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

// Parses bytes of a whole file. `source` (a path) prefixes messages: "<source>: <problem>".
SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& source);
// Reads and parses a file; a missing file throws Error(bad_input); a corrupt one
// throws SafetensorsError.
SafetensorsFile read_safetensors(const std::string& path);

// Serialises (tensors sorted by name, contiguous offsets, header padded to 8 bytes).
std::string serialize_safetensors(const SafetensorsFile& file);
// Atomic write (temp file + rename).
void write_safetensors(const std::string& path, const SafetensorsFile& file);

}  // namespace maskgit
