#pragma once
// The safetensors container: 8-byte little-endian header length N, N bytes of JSON header,
// then the raw little-endian tensor data. Torch-free on purpose: io/tensor_io.h converts.
//
// The reader validates everything and every failure has its own message (see
// SafetensorsError::Kind), following llama.cpp's GGUF loader: a corrupt file is named and
// explained, never half-loaded.
//
// Large files (model weights) are read through SafetensorsReader, which validates the header
// alone and then reads each tensor's bytes from its offset straight to where they belong, and
// written through write_safetensors with SafetensorsTensorSource, which streams each tensor's
// bytes to the file: neither holds the whole file in memory.
#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "io/atomic_file.h"

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

// Where one tensor's bytes lie in a file, as its validated header says.
struct SafetensorsTensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t offset = 0;  // of its first byte from the start of the file (8 + header length + begin)
  uint64_t size = 0;    // bytes: numel * dtype_size
};

// A validated header: every check of parse_safetensors except the data bytes themselves.
struct SafetensorsHeader {
  std::vector<SafetensorsTensorInfo> tensors;   // in data-offset order
  std::map<std::string, std::string> metadata;  // "__metadata__"
  uint64_t file_size = 0;

  const SafetensorsTensorInfo* find(const std::string& name) const;
};

// The header's length from a file's first bytes: `first_bytes` holds at least the file's first
// min(8, file_size) bytes. Throws SafetensorsError (truncated, bad_header_length) naming
// `source` when the file is shorter than the prefix or the length is 0, over 100 MiB, or
// beyond the file.
uint64_t parse_safetensors_header_length(std::string_view first_bytes, uint64_t file_size, const std::string& source);
// Validates the header text (the `header_length` bytes after the prefix) of a file of
// `file_size` bytes: JSON, structure, metadata, names, dtypes, shapes, offsets in range, sizes,
// no overlaps, no gaps. Throws SafetensorsError naming `source`.
SafetensorsHeader parse_safetensors_header(std::string_view header_text, uint64_t file_size, const std::string& source);

// Parses bytes of a whole file. `source` (a path) prefixes messages: "<source>: <problem>".
SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& source);
// Reads and parses a file (through SafetensorsReader: the file's bytes are held once); a
// missing or non-regular file throws Error(bad_input); a corrupt one throws SafetensorsError.
SafetensorsFile read_safetensors(const std::string& path);

// A safetensors file open for reading tensor by tensor: the constructor reads and validates the
// header only; read() then takes one tensor's bytes from the file, at its offset, into memory
// the caller provides (for model weights: the parameter's own storage).
class SafetensorsReader {
 public:
  // Opens `path` under read_file_bytes's policy (a regular file of at most `max_bytes`) and
  // validates its header as parse_safetensors does. Throws Error(bad_input) naming the path
  // when it cannot be opened or read, SafetensorsError (message "<path>: ...") when it is
  // corrupt.
  explicit SafetensorsReader(const std::string& path, uint64_t max_bytes = kMaxInputFileBytes);

  const std::string& path() const { return file_.path(); }
  const SafetensorsHeader& header() const { return header_; }
  // Reads `tensor` (an entry of header()) into `destination`, tensor.size bytes. Throws
  // SafetensorsError(truncated) naming the path and the tensor when the file ends before them
  // (it shrank after it was opened), Error(bad_input) on a read error.
  void read(const SafetensorsTensorInfo& tensor, void* destination) const;

 private:
  InputFile file_;
  SafetensorsHeader header_;
};

// Serialises (tensors sorted by name, contiguous offsets, header padded to 8 bytes). Throws
// std::invalid_argument for a reserved or repeated name, a negative dimension, or data whose
// size is not the shape's.
std::string serialize_safetensors(const SafetensorsFile& file);
// Atomic write (temp file + rename; write_file_atomic's rules), the same bytes as
// serialize_safetensors, streamed from the entries without a second copy of the file. Throws
// what serialize_safetensors throws before writing anything, Error(io_error) naming the path.
void write_safetensors(const std::string& path, const SafetensorsFile& file);

// A tensor to write whose bytes are produced only as the file is written.
struct SafetensorsTensorSource {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  // Passes the tensor's numel * dtype_size little-endian bytes to the sink, in one piece or
  // several; called once, while the file is written.
  std::function<void(const ByteSink&)> write_data;
};
// Writes `tensors` and `metadata` to `path` as write_safetensors(path, file) would write the
// same entries (same bytes), streaming the header and then each tensor's bytes into the
// temporary file (write_file_atomic_streamed). Names and shapes are checked before the first
// byte (std::invalid_argument, as serialize_safetensors); a source that produces another
// number of bytes than its shape needs throws std::logic_error and nothing is replaced.
// Throws Error(io_error) naming the path on a write failure.
void write_safetensors(const std::string& path, const std::vector<SafetensorsTensorSource>& tensors,
                       const std::map<std::string, std::string>& metadata);

}  // namespace maskgit
