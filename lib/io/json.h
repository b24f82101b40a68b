#pragma once
// A small JSON value and parser. We carry our own (instead of a library) because the
// safetensors reader must reject what general parsers accept silently: duplicate keys, and
// it must name the byte offset of a syntax error. Objects keep insertion order.
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace maskgit {

class Json {
 public:
  enum class Type { null, boolean, number, string, array, object };
  using Array = std::vector<Json>;
  using Object = std::vector<std::pair<std::string, Json>>;

  Json() = default;  // null
  Json(std::nullptr_t) {}
  Json(bool value);
  Json(int value);
  Json(int64_t value);
  Json(uint64_t value);
  Json(double value);
  Json(const char* value);
  Json(std::string value);
  Json(Array value);
  Json(Object value);

  static Json array() { return Json(Array{}); }
  static Json object() { return Json(Object{}); }

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::null; }
  bool is_bool() const { return type_ == Type::boolean; }
  bool is_number() const { return type_ == Type::number; }
  bool is_string() const { return type_ == Type::string; }
  bool is_array() const { return type_ == Type::array; }
  bool is_object() const { return type_ == Type::object; }
  // True when the number was written without fraction or exponent and fits int64.
  bool is_integer() const { return type_ == Type::number && is_integer_; }

  // Accessors throw std::runtime_error with `what` naming the expected type on mismatch.
  bool as_bool() const;
  double as_double() const;
  int64_t as_int() const;  // requires is_integer()
  const std::string& as_string() const;
  const Array& as_array() const;
  Array& as_array();
  const Object& as_object() const;
  Object& as_object();

  // Object access. find() returns nullptr when absent; at() throws naming the key.
  const Json* find(const std::string& key) const;
  const Json& at(const std::string& key) const;
  bool contains(const std::string& key) const { return find(key) != nullptr; }
  // Sets (replacing an existing key, keeping its position) on an object.
  Json& set(const std::string& key, Json value);
  // Appends to an array.
  void push_back(Json value);
  size_t size() const;  // array or object element count

  // Compact when indent < 0, otherwise pretty-printed with `indent` spaces.
  std::string dump(int indent = -1) const;

  // Parses a complete document (surrounding whitespace allowed). On error throws
  // JsonParseError whose message names the problem and its byte offset.
  static Json parse(const std::string& text);

  // Deep comparison. Numbers compare by value (1 == 1.0); objects compare as key sets,
  // ignoring order.
  bool operator==(const Json& other) const;
  bool operator!=(const Json& other) const { return !(*this == other); }

 private:
  Type type_ = Type::null;
  bool bool_ = false;
  double number_ = 0.0;
  int64_t integer_ = 0;
  bool is_integer_ = false;
  std::string string_;
  Array array_;
  Object object_;
};

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

// Deeper documents are rejected so that a hostile file cannot exhaust the stack.
constexpr int kJsonMaxDepth = 256;

// Typed lookups for config files that report the full dotted path on any problem, e.g.
// "tokenizer.codebook_size: expected a positive integer". Throw std::runtime_error.
int64_t json_int(const Json& object, const std::string& key, const std::string& path);
double json_double(const Json& object, const std::string& key, const std::string& path);
bool json_bool(const Json& object, const std::string& key, const std::string& path);
std::string json_string(const Json& object, const std::string& key, const std::string& path);
std::vector<int64_t> json_int_list(const Json& object, const std::string& key,
                                   const std::string& path);

// Whether `text` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, at most
// U+10FFFF). Strings that go into JSON files must be (the writer copies bytes as they are).
bool is_valid_utf8(std::string_view text);

}  // namespace maskgit
