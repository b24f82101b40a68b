#pragma once
// Flax's msgpack checkpoint format, read with msgpack-cxx (Debian's libmsgpack-cxx-dev).
//
// flax.serialization.msgpack_serialize writes a nested dict as nested msgpack maps with string
// keys; each array is a msgpack extension value of type 1 whose payload is itself msgpack of
// the triple (shape, dtype name, raw little-endian C-order bytes). The release's checkpoints
// (tokenizer_imagenet256_checkpoint, maskgit_imagenet256_checkpoint, and the 512 pair) hold
// the variables dict {"params": {...}} (docs/model.md §4.1).
//
// Torch-free, so that it can be fuzzed alone. Every field is validated and every size bounded
// before anything is allocated: a map or array may not claim more entries than the file has
// bytes, nesting is at most kMaxFlaxDepth deep, a shape has at most kMaxFlaxRank dimensions
// whose product times the element size must equal the payload exactly. Arrays are not copied:
// they point into the file's bytes (a read-only memory mapping for files).
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace maskgit {

constexpr int kMaxFlaxDepth = 32;
constexpr int kMaxFlaxRank = 8;
// The largest checkpoint file read (the release's largest is ~0.7 GB).
constexpr uint64_t kMaxFlaxCheckpointBytes = uint64_t{16} << 30;

// The element types a checkpoint may hold, by numpy name. Others ("int32", "complex64", ...)
// are refused by name.
enum class FlaxDType { float32, float16, bfloat16, float64 };
const char* flax_dtype_name(FlaxDType dtype);
size_t flax_dtype_size(FlaxDType dtype);

struct FlaxArray {
  std::vector<int64_t> shape;   // as stored (Flax's layouts: conv kernels HWIO, dense (in, out))
  FlaxDType dtype = FlaxDType::float32;
  int64_t numel = 0;
  const unsigned char* data = nullptr;  // numel · dtype size bytes, little-endian, C order;
  size_t bytes = 0;                     // valid while the FlaxCheckpoint lives
};

class FlaxCheckpoint {
 public:
  // Maps and parses a checkpoint file (regular files only, at most kMaxFlaxCheckpointBytes).
  // Throws Error(bad_input) with one line "<path>: <problem>" for a missing, unreadable or
  // malformed file.
  static FlaxCheckpoint read(const std::string& path);
  // Parses bytes already in memory (kept by the result); `source` prefixes messages.
  static FlaxCheckpoint parse(std::string bytes, const std::string& source);

  const std::string& source() const { return source_; }
  // The arrays under the top-level "params" map, keyed by their '/'-joined path inside it
  // ("encoder/ResBlock_3/Conv_1/kernel"), in sorted order.
  const std::map<std::string, FlaxArray>& arrays() const { return arrays_; }
  const FlaxArray* find(const std::string& path) const;
  // Tells the kernel that `array`'s bytes will not be read again, so that a converter holds each
  // array's pages only while it copies them (the whole pages inside the array, of a memory-mapped
  // checkpoint; otherwise nothing). Reading the array afterwards still works (the pages are read
  // from the file again).
  void discard_pages(const FlaxArray& array) const;

 private:
  void parse_bytes(const unsigned char* bytes, size_t size);
  std::string source_;
  std::shared_ptr<const void> storage_;  // the mapping or the string the arrays point into
  bool mapped_ = false;
  std::map<std::string, FlaxArray> arrays_;
};

}  // namespace maskgit
