#include "io/safetensors.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <set>

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

uint64_t read_little_endian_u64(const std::string& bytes) {
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
  for (const auto& [key, item] : value.as_object()) {
    if (!item.is_string())
      check.fail(Kind::bad_metadata,
                 fmt::format("\"{}\" value for \"{}\" is not a string", kMetadataKey, key));
    metadata[key] = item.as_string();
  }
  return metadata;
}

struct PlacedEntry {
  SafetensorsEntry entry;
  uint64_t begin = 0;
  uint64_t end = 0;
};

PlacedEntry parse_entry(const std::string& name, const Json& value, uint64_t data_size,
                        const Validator& check) {
  const std::string where = fmt::format("tensor \"{}\"", name);
  if (!value.is_object()) check.fail(Kind::bad_structure, where + ": entry is not an object");
  for (const auto& member : value.as_object()) {
    const std::string& field = member.first;
    if (field != "dtype" && field != "shape" && field != "data_offsets")
      check.fail(Kind::bad_structure, fmt::format("{}: unexpected field \"{}\"", where, field));
  }
  const Json* dtype = value.find("dtype");
  const Json* shape = value.find("shape");
  const Json* offsets = value.find("data_offsets");
  if (!dtype) check.fail(Kind::bad_structure, where + ": missing \"dtype\"");
  if (!shape) check.fail(Kind::bad_structure, where + ": missing \"shape\"");
  if (!offsets) check.fail(Kind::bad_structure, where + ": missing \"data_offsets\"");

  PlacedEntry placed;
  SafetensorsEntry& entry = placed.entry;
  entry.name = name;

  if (!dtype->is_string())
    check.fail(Kind::bad_dtype, fmt::format("{}: dtype is not a string: {}", where, dtype->dump()));
  if (!parse_dtype(dtype->as_string(), &entry.dtype))
    check.fail(Kind::bad_dtype,
               fmt::format("{}: unsupported dtype \"{}\" (supported: F64 F32 F16 BF16 I64 I32 "
                           "I16 I8 U8 BOOL)",
                           where, dtype->as_string()));

  if (!shape->is_array())
    check.fail(Kind::bad_shape, fmt::format("{}: shape is not a list: {}", where, shape->dump()));
  for (const Json& dim : shape->as_array()) {
    if (!dim.is_integer() || dim.as_int() < 0)
      check.fail(Kind::bad_shape,
                 fmt::format("{}: shape {} is not a list of non-negative integers", where,
                             shape->dump()));
    entry.shape.push_back(dim.as_int());
  }

  const auto is_offset = [](const Json& item) { return item.is_integer() && item.as_int() >= 0; };
  if (!offsets->is_array() || offsets->size() != 2 || !is_offset(offsets->as_array()[0]) ||
      !is_offset(offsets->as_array()[1]))
    check.fail(Kind::bad_offsets,
               fmt::format("{}: data_offsets {} is not [begin, end] with non-negative integers",
                           where, offsets->dump()));
  placed.begin = static_cast<uint64_t>(offsets->as_array()[0].as_int());
  placed.end = static_cast<uint64_t>(offsets->as_array()[1].as_int());
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

SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& source) {
  const Validator check(source);
  if (bytes.size() < kLengthPrefixSize)
    check.fail(Kind::truncated, fmt::format("file is {} bytes, shorter than the 8-byte header "
                                            "length prefix",
                                            bytes.size()));
  const uint64_t header_size = read_little_endian_u64(bytes);
  const uint64_t available = bytes.size() - kLengthPrefixSize;
  if (header_size == 0) check.fail(Kind::bad_header_length, "header length is 0");
  if (header_size > kMaxHeaderSize)
    check.fail(Kind::bad_header_length,
               fmt::format("header length {} exceeds the limit of {} bytes (file is {} bytes)",
                           header_size, kMaxHeaderSize, bytes.size()));
  if (header_size > available)
    check.fail(Kind::bad_header_length,
               fmt::format("header length {} exceeds the {} bytes after the length prefix "
                           "(file is {} bytes)",
                           header_size, available, bytes.size()));

  const std::string header_text = bytes.substr(kLengthPrefixSize, header_size);
  const size_t data_start = kLengthPrefixSize + header_size;
  const uint64_t data_size = bytes.size() - data_start;

  Json header;
  try {
    header = Json::parse(header_text);
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

  SafetensorsFile file;
  std::vector<PlacedEntry> placed;
  placed.reserve(header.size());
  for (const auto& [name, value] : header.as_object()) {
    if (name == kMetadataKey) {
      file.metadata = parse_metadata(value, check);
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

  file.tensors.reserve(placed.size());
  for (PlacedEntry& item : placed) {
    item.entry.data = bytes.substr(data_start + item.begin, item.end - item.begin);
    file.tensors.push_back(std::move(item.entry));
  }
  return file;
}

SafetensorsFile read_safetensors(const std::string& path) {
  return parse_safetensors(read_file_bytes(path), path);
}

std::string serialize_safetensors(const SafetensorsFile& file) {
  std::vector<const SafetensorsEntry*> sorted;
  sorted.reserve(file.tensors.size());
  for (const auto& entry : file.tensors) sorted.push_back(&entry);
  std::sort(sorted.begin(), sorted.end(),
            [](const SafetensorsEntry* a, const SafetensorsEntry* b) { return a->name < b->name; });

  Json::Object header;
  if (!file.metadata.empty()) {
    Json::Object metadata;
    for (const auto& [key, value] : file.metadata) metadata.emplace_back(key, Json(value));
    header.emplace_back(kMetadataKey, Json(std::move(metadata)));
  }
  uint64_t offset = 0;
  for (size_t i = 0; i < sorted.size(); ++i) {
    const SafetensorsEntry& entry = *sorted[i];
    if (entry.name == kMetadataKey)
      throw std::invalid_argument(
          fmt::format("safetensors: \"{}\" cannot be used as a tensor name", kMetadataKey));
    if (i > 0 && sorted[i - 1]->name == entry.name)
      throw std::invalid_argument(
          fmt::format("safetensors: tensor name \"{}\" used twice", entry.name));
    Json::Array shape;
    for (const int64_t dim : entry.shape) {
      if (dim < 0)
        throw std::invalid_argument(fmt::format("safetensors: tensor \"{}\" has negative shape {}",
                                                entry.name, shape_text(entry.shape)));
      shape.emplace_back(dim);
    }
    uint64_t expected_bytes = 0;
    if (!checked_byte_size(entry.shape, dtype_size(entry.dtype), &expected_bytes) ||
        expected_bytes != entry.data.size())
      throw std::invalid_argument(fmt::format(
          "safetensors: tensor \"{}\" has {} data bytes, shape {} of {} needs {}", entry.name,
          entry.data.size(), shape_text(entry.shape), dtype_name(entry.dtype), expected_bytes));
    const uint64_t end = offset + expected_bytes;
    header.emplace_back(entry.name,
                        Json(Json::Object{{"dtype", Json(dtype_name(entry.dtype))},
                                          {"shape", Json(std::move(shape))},
                                          {"data_offsets", Json(Json::Array{Json(offset), Json(end)})}}));
    offset = end;
  }

  std::string header_text = Json(std::move(header)).dump();
  // Padding keeps the data section 8-byte aligned for readers that map the file.
  header_text.append((8 - header_text.size() % 8) % 8, ' ');

  std::string out;
  out.reserve(kLengthPrefixSize + header_text.size() + offset);
  append_little_endian_u64(out, header_text.size());
  out += header_text;
  for (const SafetensorsEntry* entry : sorted) out += entry->data;
  return out;
}

void write_safetensors(const std::string& path, const SafetensorsFile& file) {
  write_file_atomic(path, serialize_safetensors(file));
}

}  // namespace maskgit
