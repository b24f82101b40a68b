#include "io/safetensors.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <optional>
#include <set>
#include <string_view>

#include "io/atomic_file.h"
#include "io/json.h"

namespace maskgit {
namespace {

using Kind = SafetensorsError::Kind;

constexpr size_t kLengthPrefixSize = 8;
// Real headers are a few hundred bytes per tensor; anything this large is corruption, and
// refusing it early avoids parsing (or allocating for) garbage.
constexpr uint64_t kMaxHeaderSize = 100u * 1024u * 1024u;
constexpr const char* kMetadataKey = "__metadata__";

struct DTypeInfo {
  DType dtype;
  const char* name;
  size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4}, {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2}, {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
    {DType::I16, "I16", 2}, {DType::I8, "I8", 1},   {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1},
};

const DTypeInfo& dtype_info(DType dtype) {
  for (const auto& info : kDTypes) {
    if (info.dtype == dtype) return info;
  }
  throw std::invalid_argument("unknown DType value");
}

class Validator {
 public:
  explicit Validator(const std::string& source) : source_(source) {}

  [[noreturn]] void fail(Kind kind, const std::string& problem) const {
    throw SafetensorsError(kind, fmt::format("{}: {}", source_, problem));
  }

 private:
  const std::string& source_;
};

uint64_t read_little_endian_u64(std::string_view bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < 8; ++i)
    value |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  return value;
}

void append_little_endian_u64(std::string& out, uint64_t value) {
  for (size_t i = 0; i < 8; ++i) out += static_cast<char>((value >> (8 * i)) & 0xff);
}

// numel * element size, or false when it does not fit in 64 bits.
bool checked_byte_size(const std::vector<int64_t>& shape, size_t element_size, uint64_t* out) {
  uint64_t total = element_size;
  for (const int64_t dim : shape) {
    const auto extent = static_cast<uint64_t>(dim);
    if (extent != 0 && total > std::numeric_limits<uint64_t>::max() / extent) return false;
    total *= extent;
  }
  *out = total;
  return true;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

std::map<std::string, std::string> parse_metadata(const Json& value, const Validator& check) {
  if (!value.is_object())
    check.fail(Kind::bad_metadata, fmt::format("\"{}\" is not an object", kMetadataKey));
  std::map<std::string, std::string> metadata;
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string())
      check.fail(Kind::bad_metadata,
                 fmt::format("\"{}\" value for \"{}\" is not a string", kMetadataKey, key));
    metadata[key] = item.get<std::string>();
  }
  return metadata;
}

struct PlacedEntry {
  SafetensorsTensorInfo entry;  // offset filled in once the data section's start is known
  uint64_t begin = 0;
  uint64_t end = 0;
};

PlacedEntry parse_entry(const std::string& name, const Json& value, uint64_t data_size,
                        const Validator& check) {
  const std::string where = fmt::format("tensor \"{}\"", name);
  if (!value.is_object()) check.fail(Kind::bad_structure, where + ": entry is not an object");
  for (const auto& member : value.items()) {
    const std::string& field = member.key();
    if (field != "dtype" && field != "shape" && field != "data_offsets")
      check.fail(Kind::bad_structure, fmt::format("{}: unexpected field \"{}\"", where, field));
  }
  const Json* dtype = json_find(value, "dtype");
  const Json* shape = json_find(value, "shape");
  const Json* offsets = json_find(value, "data_offsets");
  if (!dtype) check.fail(Kind::bad_structure, where + ": missing \"dtype\"");
  if (!shape) check.fail(Kind::bad_structure, where + ": missing \"shape\"");
  if (!offsets) check.fail(Kind::bad_structure, where + ": missing \"data_offsets\"");

  PlacedEntry placed;
  SafetensorsTensorInfo& entry = placed.entry;
  entry.name = name;

  if (!dtype->is_string())
    check.fail(Kind::bad_dtype, fmt::format("{}: dtype is not a string: {}", where, dump_json(*dtype)));
  if (!parse_dtype(dtype->get<std::string>(), &entry.dtype))
    check.fail(Kind::bad_dtype,
               fmt::format("{}: unsupported dtype \"{}\" (supported: F64 F32 F16 BF16 I64 I32 "
                           "I16 I8 U8 BOOL)",
                           where, dtype->get<std::string>()));

  if (!shape->is_array())
    check.fail(Kind::bad_shape, fmt::format("{}: shape is not a list: {}", where, dump_json(*shape)));
  for (const Json& dim : *shape) {
    const std::optional<int64_t> extent = json_as_int64(dim);
    if (!extent || *extent < 0)
      check.fail(Kind::bad_shape,
                 fmt::format("{}: shape {} is not a list of non-negative integers", where,
                             dump_json(*shape)));
    entry.shape.push_back(*extent);
  }

  // Offsets, like dimensions, are non-negative integers that fit int64.
  const auto offset_at = [&](size_t index) -> std::optional<int64_t> {
    const std::optional<int64_t> item = json_as_int64((*offsets)[index]);
    if (!item || *item < 0) return std::nullopt;
    return item;
  };
  if (!offsets->is_array() || offsets->size() != 2 || !offset_at(0) || !offset_at(1))
    check.fail(Kind::bad_offsets,
               fmt::format("{}: data_offsets {} is not [begin, end] with non-negative integers",
                           where, dump_json(*offsets)));
  placed.begin = static_cast<uint64_t>(*offset_at(0));
  placed.end = static_cast<uint64_t>(*offset_at(1));
  if (placed.begin > placed.end)
    check.fail(Kind::bad_offsets, fmt::format("{}: data_offsets [{}, {}] has begin > end", where,
                                              placed.begin, placed.end));
  if (placed.end > data_size)
    check.fail(Kind::offsets_out_of_range,
               fmt::format("{}: data_offsets end {} is beyond the data section of {} bytes", where,
                           placed.end, data_size));

  uint64_t expected_bytes = 0;
  if (!checked_byte_size(entry.shape, dtype_size(entry.dtype), &expected_bytes))
    check.fail(Kind::size_mismatch, fmt::format("{}: shape {} is too large to address", where,
                                                shape_text(entry.shape)));
  if (expected_bytes != placed.end - placed.begin)
    check.fail(Kind::size_mismatch,
               fmt::format("{}: shape {} of {} needs {} bytes, data_offsets [{}, {}] cover {}",
                           where, shape_text(entry.shape), dtype_name(entry.dtype), expected_bytes,
                           placed.begin, placed.end, placed.end - placed.begin));
  entry.size = expected_bytes;
  return placed;
}

// Every data byte must belong to exactly one tensor: overlaps would alias tensors and gaps
// hide data that no reader will ever look at, both signs of a damaged or forged file.
void check_layout(const std::vector<PlacedEntry>& sorted, uint64_t data_size,
                  const Validator& check) {
  uint64_t covered_to = 0;
  const PlacedEntry* previous = nullptr;
  for (const PlacedEntry& placed : sorted) {
    if (placed.begin < covered_to)
      check.fail(Kind::overlap,
                 fmt::format("tensors \"{}\" [{}, {}] and \"{}\" [{}, {}] overlap",
                             previous->entry.name, previous->begin, previous->end,
                             placed.entry.name, placed.begin, placed.end));
    if (placed.begin > covered_to) {
      if (previous)
        check.fail(Kind::gap, fmt::format("data bytes [{}, {}) between tensors \"{}\" and \"{}\" "
                                          "belong to no tensor",
                                          covered_to, placed.begin, previous->entry.name,
                                          placed.entry.name));
      check.fail(Kind::gap, fmt::format("data bytes [0, {}) before the first tensor \"{}\" "
                                        "belong to no tensor",
                                        placed.begin, placed.entry.name));
    }
    covered_to = placed.end;
    previous = &placed;
  }
  if (covered_to < data_size)
    check.fail(Kind::gap, fmt::format("data bytes [{}, {}) after the last tensor belong to no "
                                      "tensor",
                                      covered_to, data_size));
}

}  // namespace

const char* dtype_name(DType dtype) { return dtype_info(dtype).name; }

size_t dtype_size(DType dtype) { return dtype_info(dtype).size; }

bool parse_dtype(const std::string& name, DType* out) {
  for (const auto& info : kDTypes) {
    if (name == info.name) {
      *out = info.dtype;
      return true;
    }
  }
  return false;
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  for (const auto& entry : tensors) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

const SafetensorsTensorInfo* SafetensorsHeader::find(const std::string& name) const {
  for (const auto& tensor : tensors) {
    if (tensor.name == name) return &tensor;
  }
  return nullptr;
}

uint64_t parse_safetensors_header_length(std::string_view first_bytes, uint64_t file_size, const std::string& source) {
  const Validator check(source);
  if (file_size < kLengthPrefixSize || first_bytes.size() < kLengthPrefixSize)
    check.fail(Kind::truncated, fmt::format("file is {} bytes, shorter than the 8-byte header "
                                            "length prefix",
                                            file_size));
  const uint64_t header_size = read_little_endian_u64(first_bytes);
  const uint64_t available = file_size - kLengthPrefixSize;
  if (header_size == 0) check.fail(Kind::bad_header_length, "header length is 0");
  if (header_size > kMaxHeaderSize)
    check.fail(Kind::bad_header_length,
               fmt::format("header length {} exceeds the limit of {} bytes (file is {} bytes)",
                           header_size, kMaxHeaderSize, file_size));
  if (header_size > available)
    check.fail(Kind::bad_header_length,
               fmt::format("header length {} exceeds the {} bytes after the length prefix "
                           "(file is {} bytes)",
                           header_size, available, file_size));
  return header_size;
}

SafetensorsHeader parse_safetensors_header(std::string_view header_text, uint64_t file_size,
                                           const std::string& source) {
  const Validator check(source);
  const uint64_t data_start = kLengthPrefixSize + header_text.size();
  if (file_size < data_start)
    check.fail(Kind::bad_header_length,
               fmt::format("header length {} exceeds the {} bytes after the length prefix "
                           "(file is {} bytes)",
                           header_text.size(), file_size < kLengthPrefixSize ? 0 : file_size - kLengthPrefixSize,
                           file_size));
  const uint64_t data_size = file_size - data_start;

  Json header;
  try {
    header = parse_json(header_text);
  } catch (const JsonDuplicateKeyError& e) {
    if (e.depth() == 1 && e.key() == kMetadataKey)
      check.fail(Kind::bad_metadata,
                 fmt::format("\"{}\" appears twice in the header (byte {})", kMetadataKey,
                             e.offset()));
    if (e.depth() == 1)
      check.fail(Kind::duplicate_name,
                 fmt::format("tensor \"{}\" appears twice in the header (byte {})", e.key(),
                             e.offset()));
    check.fail(Kind::bad_structure, fmt::format("header: {} of the header", e.what()));
  } catch (const JsonParseError& e) {
    check.fail(Kind::bad_json, fmt::format("header is not valid JSON: {} of the header", e.what()));
  }
  if (!header.is_object())
    check.fail(Kind::bad_structure, fmt::format("header is not a JSON object but {}",
                                                header.is_array()    ? "an array"
                                                : header.is_string() ? "a string"
                                                : header.is_number() ? "a number"
                                                                     : "a literal"));

  SafetensorsHeader result;
  result.file_size = file_size;
  std::vector<PlacedEntry> placed;
  placed.reserve(header.size());
  for (const auto& [name, value] : header.items()) {
    if (name == kMetadataKey) {
      result.metadata = parse_metadata(value, check);
      continue;
    }
    placed.push_back(parse_entry(name, value, data_size, check));
  }

  // Ties on begin put zero-size tensors first, so they never look like they overlap the
  // tensor that starts at the same byte; the name makes the order fully deterministic.
  std::sort(placed.begin(), placed.end(), [](const PlacedEntry& a, const PlacedEntry& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end < b.end;
    return a.entry.name < b.entry.name;
  });
  check_layout(placed, data_size, check);

  result.tensors.reserve(placed.size());
  for (PlacedEntry& item : placed) {
    item.entry.offset = data_start + item.begin;
    result.tensors.push_back(std::move(item.entry));
  }
  return result;
}

SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& source) {
  const uint64_t header_size = parse_safetensors_header_length(bytes, bytes.size(), source);
  SafetensorsHeader header = parse_safetensors_header(
      std::string_view(bytes).substr(kLengthPrefixSize, header_size), bytes.size(), source);
  SafetensorsFile file;
  file.metadata = std::move(header.metadata);
  file.tensors.reserve(header.tensors.size());
  for (SafetensorsTensorInfo& tensor : header.tensors) {
    SafetensorsEntry entry;
    entry.name = std::move(tensor.name);
    entry.dtype = tensor.dtype;
    entry.shape = std::move(tensor.shape);
    entry.data = bytes.substr(tensor.offset, tensor.size);
    file.tensors.push_back(std::move(entry));
  }
  return file;
}

SafetensorsReader::SafetensorsReader(const std::string& path, uint64_t max_bytes) : file_(path, max_bytes) {
  const Validator check(path);
  const uint64_t size = file_.size();
  const auto shrank = [&] {
    check.fail(Kind::truncated, fmt::format("the file ended before its header's end (it was {} bytes when "
                                            "opened: it changed while being read)",
                                            size));
  };
  char prefix[kLengthPrefixSize] = {};
  const size_t prefix_bytes = static_cast<size_t>(std::min<uint64_t>(size, kLengthPrefixSize));
  if (!file_.read_at(0, prefix, prefix_bytes)) shrank();
  const uint64_t header_size =
      parse_safetensors_header_length(std::string_view(prefix, prefix_bytes), size, path);
  // At most 100 MiB and within the file (checked above), so this allocation is bounded.
  std::string header_text(static_cast<size_t>(header_size), '\0');
  if (!file_.read_at(kLengthPrefixSize, header_text.data(), header_text.size())) shrank();
  header_ = parse_safetensors_header(header_text, size, path);
}

void SafetensorsReader::read(const SafetensorsTensorInfo& tensor, void* destination) const {
  if (tensor.size == 0) return;
  if (tensor.offset + tensor.size > file_.size() || !file_.read_at(tensor.offset, destination, tensor.size))
    Validator(path()).fail(Kind::truncated,
                           fmt::format("tensor \"{}\": the file ended before its bytes [{}, {}) (it was {} "
                                       "bytes when opened: it changed while being read)",
                                       tensor.name, tensor.offset, tensor.offset + tensor.size, file_.size()));
}

SafetensorsFile read_safetensors(const std::string& path) {
  const SafetensorsReader reader(path);
  SafetensorsFile file;
  file.metadata = reader.header().metadata;
  file.tensors.reserve(reader.header().tensors.size());
  for (const SafetensorsTensorInfo& tensor : reader.header().tensors) {
    SafetensorsEntry entry;
    entry.name = tensor.name;
    entry.dtype = tensor.dtype;
    entry.shape = tensor.shape;
    entry.data.resize(static_cast<size_t>(tensor.size));
    reader.read(tensor, entry.data.data());
    file.tensors.push_back(std::move(entry));
  }
  return file;
}

namespace {

// What the header of a file to write says about one tensor.
struct Layout {
  const std::string* name = nullptr;
  DType dtype = DType::F32;
  const std::vector<int64_t>* shape = nullptr;
  std::optional<uint64_t> data_bytes;  // the bytes at hand, when known before writing
  size_t index = 0;                    // in the caller's list
  uint64_t bytes = 0;                  // numel * dtype size, set by write_header
};

// Sorts `tensors` by name, checks them (std::invalid_argument) and returns the length prefix
// and the header text, padded so that the data section starts 8-byte aligned.
std::string write_header(std::vector<Layout>& tensors, const std::map<std::string, std::string>& metadata) {
  std::sort(tensors.begin(), tensors.end(), [](const Layout& a, const Layout& b) { return *a.name < *b.name; });
  Json header = Json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    Layout& tensor = tensors[i];
    const std::string& name = *tensor.name;
    if (name == kMetadataKey)
      throw std::invalid_argument(
          fmt::format("safetensors: \"{}\" cannot be used as a tensor name", kMetadataKey));
    if (i > 0 && *tensors[i - 1].name == name)
      throw std::invalid_argument(fmt::format("safetensors: tensor name \"{}\" used twice", name));
    for (const int64_t dim : *tensor.shape) {
      if (dim < 0)
        throw std::invalid_argument(fmt::format("safetensors: tensor \"{}\" has negative shape {}", name,
                                                shape_text(*tensor.shape)));
    }
    // Names go into the header as they are, so they must be UTF-8 for it to read back.
    if (!is_valid_utf8(name))
      throw std::invalid_argument(fmt::format("safetensors: tensor name \"{}\" is not valid UTF-8", name));
    uint64_t expected_bytes = 0;
    const bool addressable = checked_byte_size(*tensor.shape, dtype_size(tensor.dtype), &expected_bytes);
    if (!addressable || (tensor.data_bytes && expected_bytes != *tensor.data_bytes))
      throw std::invalid_argument(fmt::format(
          "safetensors: tensor \"{}\" has {} data bytes, shape {} of {} needs {}", name,
          tensor.data_bytes ? fmt::format("{}", *tensor.data_bytes) : std::string("?"),
          shape_text(*tensor.shape), dtype_name(tensor.dtype), addressable ? fmt::format("{}", expected_bytes)
                                                                          : std::string("more than 2^64")));
    if (expected_bytes > std::numeric_limits<uint64_t>::max() - offset)
      throw std::invalid_argument(fmt::format("safetensors: tensor \"{}\" ends beyond 2^64 bytes", name));
    tensor.bytes = expected_bytes;
    const uint64_t end = offset + expected_bytes;
    // Names are sorted and unique (checked above): append, without ordered_json's search for the key.
    header.get_ref<Json::object_t&>().emplace_back(
        name, Json{{"dtype", dtype_name(tensor.dtype)}, {"shape", *tensor.shape}, {"data_offsets", {offset, end}}});
    offset = end;
  }

  // Metadata values that are not UTF-8 (a data path, say) are written with U+FFFD for those bytes.
  std::string header_text = dump_json(header);
  // Padding keeps the data section 8-byte aligned for readers that map the file.
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  std::string out;
  out.reserve(kLengthPrefixSize + header_text.size());
  append_little_endian_u64(out, header_text.size());
  out += header_text;
  return out;
}

std::vector<Layout> layouts_of(const SafetensorsFile& file) {
  std::vector<Layout> tensors;
  tensors.reserve(file.tensors.size());
  for (size_t i = 0; i < file.tensors.size(); ++i) {
    const SafetensorsEntry& entry = file.tensors[i];
    Layout layout;
    layout.name = &entry.name;
    layout.dtype = entry.dtype;
    layout.shape = &entry.shape;
    layout.data_bytes = entry.data.size();
    layout.index = i;
    tensors.push_back(layout);
  }
  return tensors;
}

}  // namespace

std::string serialize_safetensors(const SafetensorsFile& file) {
  std::vector<Layout> tensors = layouts_of(file);
  std::string out = write_header(tensors, file.metadata);
  uint64_t total = out.size();
  for (const Layout& tensor : tensors) total += tensor.bytes;
  out.reserve(static_cast<size_t>(total));
  for (const Layout& tensor : tensors) out += file.tensors[tensor.index].data;
  return out;
}

void write_safetensors(const std::string& path, const SafetensorsFile& file) {
  std::vector<Layout> tensors = layouts_of(file);
  const std::string header = write_header(tensors, file.metadata);
  write_file_atomic_streamed(path, [&](const ByteSink& sink) {
    sink(header);
    for (const Layout& tensor : tensors) sink(file.tensors[tensor.index].data);
  });
}

void write_safetensors(const std::string& path, const std::vector<SafetensorsTensorSource>& sources,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<Layout> tensors;
  tensors.reserve(sources.size());
  for (size_t i = 0; i < sources.size(); ++i) {
    Layout layout;
    layout.name = &sources[i].name;
    layout.dtype = sources[i].dtype;
    layout.shape = &sources[i].shape;
    layout.index = i;
    tensors.push_back(layout);
  }
  const std::string header = write_header(tensors, metadata);
  write_file_atomic_streamed(path, [&](const ByteSink& sink) {
    sink(header);
    for (const Layout& tensor : tensors) {
      uint64_t written = 0;
      const ByteSink counted = [&](std::string_view bytes) {
        written += bytes.size();
        if (written > tensor.bytes) return;  // reported below, before anything is renamed
        sink(bytes);
      };
      if (sources[tensor.index].write_data) sources[tensor.index].write_data(counted);
      if (written != tensor.bytes)
        throw std::logic_error(fmt::format("safetensors: tensor \"{}\" produced {} bytes, shape {} of {} needs {}",
                                           *tensor.name, written, shape_text(*tensor.shape),
                                           dtype_name(tensor.dtype), tensor.bytes));
    }
  });
}

}  // namespace maskgit
