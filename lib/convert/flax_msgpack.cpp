#include "convert/flax_msgpack.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>

// Header-only use of msgpack-cxx without its optional Boost parts.
#ifndef MSGPACK_NO_BOOST
#define MSGPACK_NO_BOOST
#endif
#include <msgpack.hpp>

#include "common/error.h"

namespace maskgit {
namespace {

// Flax's extension codes (flax/serialization.py): 1 ndarray, 2 native complex, 3 numpy scalar.
constexpr int8_t kExtNdarray = 1, kExtComplex = 2, kExtScalar = 3;
// Flax splits arrays over 1 GiB into a map with this key; the release has none.
constexpr const char* kChunkedArrayKey = "__msgpack_chunked_array__";
// The largest map any checkpoint needs (the release's widest holds 26 entries).
constexpr size_t kMaxMapEntries = 8192;
constexpr size_t kMaxArrayEntries = 64;
constexpr size_t kMaxKeyBytes = 1024;

const char* kind_name(msgpack::type::object_type type) {
  switch (type) {
    case msgpack::type::NIL: return "nil";
    case msgpack::type::BOOLEAN: return "boolean";
    case msgpack::type::POSITIVE_INTEGER:
    case msgpack::type::NEGATIVE_INTEGER: return "integer";
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return "float";
    case msgpack::type::STR: return "string";
    case msgpack::type::BIN: return "bytes";
    case msgpack::type::ARRAY: return "list";
    case msgpack::type::MAP: return "map";
    case msgpack::type::EXT: return "extension value";
  }
  return "unknown value";
}

// Strings, byte strings and extension payloads stay in the caller's buffer (no copies).
bool reference_in_place(msgpack::type::object_type, std::size_t, void*) { return true; }

msgpack::unpack_limit limits(size_t size) {
  return msgpack::unpack_limit(kMaxArrayEntries, kMaxMapEntries, kMaxKeyBytes, size, size, kMaxFlaxDepth);
}

// Counts the entries of every map and list before the real unpack allocates one object for
// each: the per-container limits alone would let a file of many small maps (2 bytes an entry)
// make msgpack-cxx allocate ~25 times the file's size.
constexpr size_t kMaxTotalEntries = size_t{1} << 20;
struct EntryCounter : msgpack::null_visitor {
  size_t total = 0;
  bool start_array(uint32_t count) { return add(count); }
  bool start_map(uint32_t count) { return add(count); }
  bool add(uint32_t count) {
    total += count;
    if (total > kMaxTotalEntries)
      throw std::runtime_error(fmt::format("more than {} map and list entries in all (a checkpoint holds a few "
                                           "thousand)", kMaxTotalEntries));
    return true;
  }
  void parse_error(size_t, size_t) {}         // reported by the unpack that follows
  void insufficient_bytes(size_t, size_t) {}  // likewise
};

// One complete msgpack value spanning exactly `size` bytes.
msgpack::object_handle unpack_exactly(const char* bytes, size_t size, const std::string& what) {
  size_t offset = 0;
  bool referenced = false;
  msgpack::object_handle handle;
  {
    EntryCounter counter;
    size_t counted = 0;
    try {
      msgpack::parse(bytes, size, counted, counter);
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(fmt::format("{}: {}", what, e.what()));
    }
  }
  try {
    handle = msgpack::unpack(bytes, size, offset, referenced, reference_in_place, nullptr, limits(size));
  } catch (const msgpack::insufficient_bytes&) {
    throw std::runtime_error(fmt::format("{}: truncated (the data ends inside a value)", what));
  } catch (const msgpack::size_overflow& e) {
    throw std::runtime_error(fmt::format("{}: a size is beyond the limits ({}; maps hold at most {} entries, "
                                         "lists {}, keys {} bytes, nesting {} levels)",
                                         what, e.what(), kMaxMapEntries, kMaxArrayEntries, kMaxKeyBytes,
                                         kMaxFlaxDepth));
  } catch (const msgpack::unpack_error& e) {
    throw std::runtime_error(fmt::format("{}: not valid msgpack ({})", what, e.what()));
  }
  if (offset != size)
    throw std::runtime_error(fmt::format("{}: {} bytes of trailing data after the value", what, size - offset));
  return handle;
}

bool parse_flax_dtype(const std::string& name, FlaxDType* dtype) {
  for (FlaxDType candidate : {FlaxDType::float32, FlaxDType::float16, FlaxDType::bfloat16, FlaxDType::float64}) {
    if (name == flax_dtype_name(candidate)) {
      *dtype = candidate;
      return true;
    }
  }
  return false;
}

std::string as_text(const msgpack::object& object) {
  return std::string(object.via.str.ptr, object.via.str.size);
}

// A printable rendering of a key for messages (keys are user data).
std::string printable(const std::string& text) {
  std::string out;
  for (unsigned char c : text.substr(0, 80)) out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  return text.size() > 80 ? out + "..." : out;
}

FlaxArray parse_array(const msgpack::object& ext, const std::string& path) {
  const int8_t code = ext.via.ext.type();
  if (code == kExtScalar) throw std::runtime_error(fmt::format("{}: a numpy scalar, not an array", path));
  if (code == kExtComplex) throw std::runtime_error(fmt::format("{}: a complex number, not an array", path));
  if (code != kExtNdarray)
    throw std::runtime_error(fmt::format("{}: msgpack extension type {} is not a Flax array (type {})", path,
                                         static_cast<int>(code), static_cast<int>(kExtNdarray)));
  const std::string what = path + " (array payload)";
  const msgpack::object_handle handle = unpack_exactly(ext.via.ext.data(), ext.via.ext.size, what);
  const msgpack::object& triple = handle.get();
  if (triple.type != msgpack::type::ARRAY || triple.via.array.size != 3)
    throw std::runtime_error(fmt::format("{}: expected (shape, dtype, bytes), got a {}", what, kind_name(triple.type)));
  const msgpack::object& shape = triple.via.array.ptr[0];
  const msgpack::object& dtype = triple.via.array.ptr[1];
  const msgpack::object& data = triple.via.array.ptr[2];
  if (shape.type != msgpack::type::ARRAY)
    throw std::runtime_error(fmt::format("{}: shape: expected a list of sizes, got a {}", path, kind_name(shape.type)));
  if (shape.via.array.size > static_cast<uint32_t>(kMaxFlaxRank))
    throw std::runtime_error(fmt::format("{}: shape: {} dimensions, at most {} are supported", path,
                                         shape.via.array.size, kMaxFlaxRank));
  if (dtype.type != msgpack::type::STR)
    throw std::runtime_error(fmt::format("{}: dtype: expected a name, got a {}", path, kind_name(dtype.type)));
  if (data.type != msgpack::type::BIN && data.type != msgpack::type::STR)
    throw std::runtime_error(fmt::format("{}: data: expected bytes, got a {}", path, kind_name(data.type)));
  FlaxArray array;
  const std::string dtype_text = as_text(dtype);
  if (!parse_flax_dtype(dtype_text, &array.dtype))
    throw std::runtime_error(fmt::format("{}: dtype \"{}\" is not supported (float32, float16, bfloat16 and "
                                         "float64 are)", path, printable(dtype_text)));
  // A size over 2^40 elements cannot fit any file this reader accepts; bounding each factor
  // keeps the product from overflowing.
  constexpr uint64_t kMaxElements = uint64_t{1} << 40;
  uint64_t numel = 1;
  for (uint32_t i = 0; i < shape.via.array.size; ++i) {
    const msgpack::object& size = shape.via.array.ptr[i];
    if (size.type != msgpack::type::POSITIVE_INTEGER)
      throw std::runtime_error(fmt::format("{}: shape: dimension {} is not a non-negative integer", path, i));
    if (size.via.u64 > kMaxElements)
      throw std::runtime_error(fmt::format("{}: shape: dimension {} ({}) is too large", path, i, size.via.u64));
    if (size.via.u64 != 0 && numel > kMaxElements / size.via.u64)  // checked before multiplying
      throw std::runtime_error(fmt::format("{}: shape: too many elements", path));
    numel *= size.via.u64;
    array.shape.push_back(static_cast<int64_t>(size.via.u64));
  }
  const uint64_t expected = numel * flax_dtype_size(array.dtype);
  const uint64_t actual = data.type == msgpack::type::BIN ? data.via.bin.size : data.via.str.size;
  if (expected != actual)
    throw std::runtime_error(fmt::format("{}: {} bytes of data, but shape {} of {} needs {}", path, actual,
                                         fmt::format("[{}]", fmt::join(array.shape, ", ")), dtype_text, expected));
  array.numel = static_cast<int64_t>(numel);
  array.bytes = static_cast<size_t>(actual);
  array.data = reinterpret_cast<const unsigned char*>(data.type == msgpack::type::BIN ? data.via.bin.ptr
                                                                                      : data.via.str.ptr);
  return array;
}

void collect(const msgpack::object& map, const std::string& prefix, std::map<std::string, FlaxArray>& out) {
  std::set<std::string> seen;
  for (uint32_t i = 0; i < map.via.map.size; ++i) {
    const msgpack::object& key = map.via.map.ptr[i].key;
    const msgpack::object& value = map.via.map.ptr[i].val;
    if (key.type != msgpack::type::STR)
      throw std::runtime_error(fmt::format("{}: a key is a {}, not a string", prefix.empty() ? "params" : prefix,
                                           kind_name(key.type)));
    const std::string name = as_text(key);
    const bool control = std::any_of(name.begin(), name.end(), [](char c) {
      return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
    });
    if (name.empty() || name.find('/') != std::string::npos || control)
      throw std::runtime_error(fmt::format("{}: key \"{}\" is empty or holds '/' or control characters", prefix.empty() ? "params" : prefix,
                                           printable(name)));
    const std::string path = prefix.empty() ? name : prefix + "/" + name;
    if (!seen.insert(name).second) throw std::runtime_error(fmt::format("{}: the key appears twice", printable(path)));
    if (name == kChunkedArrayKey)
      throw std::runtime_error(fmt::format("{}: an array Flax split into chunks (over 1 GiB); such arrays are not "
                                           "supported", prefix.empty() ? "params" : printable(prefix)));
    if (value.type == msgpack::type::MAP) {
      collect(value, path, out);
    } else if (value.type == msgpack::type::EXT) {
      out.emplace(path, parse_array(value, printable(path)));
    } else {
      throw std::runtime_error(fmt::format("{}: expected an array or a map, got a {}", printable(path),
                                           kind_name(value.type)));
    }
  }
}

struct Mapping {
  void* address = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (address) munmap(address, size);
  }
};

}  // namespace

const char* flax_dtype_name(FlaxDType dtype) {
  switch (dtype) {
    case FlaxDType::float32: return "float32";
    case FlaxDType::float16: return "float16";
    case FlaxDType::bfloat16: return "bfloat16";
    case FlaxDType::float64: return "float64";
  }
  return "?";
}

size_t flax_dtype_size(FlaxDType dtype) {
  switch (dtype) {
    case FlaxDType::float32: return 4;
    case FlaxDType::float16:
    case FlaxDType::bfloat16: return 2;
    case FlaxDType::float64: return 8;
  }
  return 0;
}

const FlaxArray* FlaxCheckpoint::find(const std::string& path) const {
  const auto it = arrays_.find(path);
  return it == arrays_.end() ? nullptr : &it->second;
}

void FlaxCheckpoint::discard_pages(const FlaxArray& array) const {
  if (!mapped_ || array.bytes == 0) return;
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(array.data);
  const uintptr_t first = (begin + page - 1) / page * page, last = (begin + array.bytes) / page * page;
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

void FlaxCheckpoint::parse_bytes(const unsigned char* bytes, size_t size) {
  try {
    if (size == 0) throw std::runtime_error("empty file");
    const msgpack::object_handle handle = unpack_exactly(reinterpret_cast<const char*>(bytes), size, "checkpoint");
    const msgpack::object& root = handle.get();
    if (root.type != msgpack::type::MAP)
      throw std::runtime_error(fmt::format("expected a Flax checkpoint (a map holding \"params\"), got a {}",
                                           kind_name(root.type)));
    const msgpack::object* params = nullptr;
    for (uint32_t i = 0; i < root.via.map.size; ++i) {
      const msgpack::object& key = root.via.map.ptr[i].key;
      const std::string name = key.type == msgpack::type::STR ? as_text(key) : std::string("<") + kind_name(key.type) + ">";
      if (name != "params")
        throw std::runtime_error(fmt::format("unexpected top-level entry \"{}\" (a release checkpoint holds only "
                                             "\"params\")", printable(name)));
      if (params) throw std::runtime_error("params: the key appears twice");
      params = &root.via.map.ptr[i].val;
    }
    if (!params) throw std::runtime_error("no \"params\" entry (not a Flax variables checkpoint)");
    if (params->type != msgpack::type::MAP)
      throw std::runtime_error(fmt::format("params: expected a map, got a {}", kind_name(params->type)));
    collect(*params, "", arrays_);
    if (arrays_.empty()) throw std::runtime_error("params: holds no arrays");
  } catch (const Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw_bad_input(fmt::format("{}: out of memory while parsing", source_));
  } catch (const std::exception& e) {
    throw_bad_input(fmt::format("{}: {}", source_, e.what()));
  }
}

FlaxCheckpoint FlaxCheckpoint::parse(std::string bytes, const std::string& source) {
  FlaxCheckpoint checkpoint;
  checkpoint.source_ = source;
  auto owned = std::make_shared<std::string>(std::move(bytes));
  checkpoint.storage_ = owned;
  checkpoint.parse_bytes(reinterpret_cast<const unsigned char*>(owned->data()), owned->size());
  return checkpoint;
}

FlaxCheckpoint FlaxCheckpoint::read(const std::string& path) {
  FlaxCheckpoint checkpoint;
  checkpoint.source_ = path;
  // O_NONBLOCK: a FIFO is never waited on (it is refused below, as every non-regular file is).
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw_bad_input(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  struct stat info {};
  const bool stat_ok = ::fstat(fd, &info) == 0;
  const int stat_errno = errno;
  if (!stat_ok || !S_ISREG(info.st_mode)) {
    ::close(fd);
    throw_bad_input(fmt::format("{}: {}", path, stat_ok ? "not a regular file" : std::strerror(stat_errno)));
  }
  const auto size = static_cast<uint64_t>(info.st_size);
  if (size == 0 || size > kMaxFlaxCheckpointBytes) {
    ::close(fd);
    throw_bad_input(fmt::format("{}: {} bytes (a checkpoint holds 1 to {} bytes)", path, size, kMaxFlaxCheckpointBytes));
  }
  auto mapping = std::make_shared<Mapping>();
  mapping->address = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);
  if (mapping->address == MAP_FAILED) {
    mapping->address = nullptr;
    throw_bad_input(fmt::format("{}: cannot map: {}", path, std::strerror(map_errno)));
  }
  mapping->size = static_cast<size_t>(size);
  checkpoint.storage_ = mapping;
  checkpoint.mapped_ = true;
  checkpoint.parse_bytes(static_cast<const unsigned char*>(mapping->address), mapping->size);
  return checkpoint;
}

}  // namespace maskgit
