#pragma once
// JSON for every file and line we read or write: nlohmann::json (Debian's nlohmann-json3-dev,
// header-only), as nlohmann::ordered_json so that objects keep their insertion order (our
// config.json files and --json lines have a stable key order).
//
// What we add on top:
// - parse_json(): the strict parser behind every read (config.json, safetensors headers,
//   metrics logs, configs in checkpoint metadata). Beyond nlohmann's own checks (RFC 8259
//   grammar, UTF-8 in strings) it refuses duplicate keys, nesting deeper than kJsonMaxDepth,
//   numbers too large for a double, a NUL byte and a byte-order mark, and names the byte
//   offset of every problem in our own words (JsonParseError).
// - dump_json(): nlohmann's dump, except that bytes which are not UTF-8 (a file name from the
//   command line need not be) become U+FFFD instead of an exception.
// - typed lookups (json_int, ...) whose errors name the dotted path of the value, e.g.
//   "tokenizer.codebook_size: expected an integer, got 0.5".
//
// Numbers: nlohmann keeps integers exact: negative ones as int64, others as uint64 (so seeds
// up to 2^64-1 are written and read back as integers); anything else, including integers
// beyond uint64, is a double.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace maskgit {

using Json = nlohmann::ordered_json;

// A syntax error (or a refused document) with the byte offset, from 0, of the problem; what()
// names the problem and ends "at byte N".
class JsonParseError : public std::runtime_error {
 public:
  JsonParseError(const std::string& message, size_t offset)
      : std::runtime_error(message), offset_(offset) {}
  size_t offset() const { return offset_; }

 private:
  size_t offset_;
};

// A repeated key in one object. Its own type so that callers (the safetensors reader) can
// report it as a domain error, not a syntax error. depth() counts the enclosing arrays and
// objects: 1 for a key of the outermost object.
class JsonDuplicateKeyError : public JsonParseError {
 public:
  JsonDuplicateKeyError(const std::string& message, size_t offset, std::string key, int depth)
      : JsonParseError(message, offset), key_(std::move(key)), depth_(depth) {}
  const std::string& key() const { return key_; }
  int depth() const { return depth_; }

 private:
  std::string key_;
  int depth_;
};

// Deeper documents are rejected so that a hostile file cannot exhaust the stack (of anything
// that walks the value recursively, dump() included).
constexpr int kJsonMaxDepth = 256;

// Parses a complete document (surrounding whitespace allowed) strictly, see above. Throws
// JsonParseError (JsonDuplicateKeyError for a repeated key).
Json parse_json(std::string_view text);

// Compact when indent < 0, otherwise pretty-printed with `indent` spaces. Doubles are written
// as the shortest text that reads back the same ("1.0", not "1"), non-finite ones as null.
std::string dump_json(const Json& value, int indent = -1);

// "a number", "an object", ... for messages.
const char* json_type_name(const Json& value);

// The value when it is an integer that fits int64, else nothing.
std::optional<int64_t> json_as_int64(const Json& value);

// The member `key` of `object`, or nullptr when `object` is not an object or has no such key.
const Json* json_find(const Json& object, const std::string& key);

// Typed lookups for config files that report the full dotted path on any problem, e.g.
// "tokenizer.codebook_size: expected a positive integer". Throw std::runtime_error. An empty
// path means the top level.
const Json& json_member(const Json& object, const std::string& key, const std::string& path);
int64_t json_int(const Json& object, const std::string& key, const std::string& path);
double json_double(const Json& object, const std::string& key, const std::string& path);
bool json_bool(const Json& object, const std::string& key, const std::string& path);
std::string json_string(const Json& object, const std::string& key, const std::string& path);
std::vector<int64_t> json_int_list(const Json& object, const std::string& key,
                                   const std::string& path);

// Whether `text` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, at most
// U+10FFFF), as strings in JSON files must be.
bool is_valid_utf8(std::string_view text);

}  // namespace maskgit
