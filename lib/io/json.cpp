#include "io/json.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <unordered_set>

namespace maskgit {
namespace {

const char* type_name(Json::Type type) {
  switch (type) {
    case Json::Type::null: return "null";
    case Json::Type::boolean: return "a boolean";
    case Json::Type::number: return "a number";
    case Json::Type::string: return "a string";
    case Json::Type::array: return "an array";
    case Json::Type::object: return "an object";
  }
  return "an unknown value";
}

[[noreturn]] void throw_type_mismatch(const char* expected, Json::Type actual) {
  throw std::runtime_error(fmt::format("expected {}, got {}", expected, type_name(actual)));
}

// A character as it should appear in an error message: printable ASCII quoted, anything
// else as a hex byte so that the message itself stays readable.
std::string describe_byte(char c) {
  const auto byte = static_cast<unsigned char>(c);
  if (byte >= 0x20 && byte < 0x7f) return fmt::format("character '{}'", c);
  return fmt::format("byte 0x{:02x}", byte);
}

void append_utf8(std::string& out, uint32_t code_point) {
  if (code_point < 0x80) {
    out += static_cast<char>(code_point);
  } else if (code_point < 0x800) {
    out += static_cast<char>(0xc0 | (code_point >> 6));
    out += static_cast<char>(0x80 | (code_point & 0x3f));
  } else if (code_point < 0x10000) {
    out += static_cast<char>(0xe0 | (code_point >> 12));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (code_point & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (code_point >> 18));
    out += static_cast<char>(0x80 | ((code_point >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (code_point & 0x3f));
  }
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

class Parser {
 public:
  explicit Parser(const std::string& text) : text_(text) {}

  Json parse_document() {
    skip_whitespace();
    Json value = parse_value(0);
    skip_whitespace();
    if (pos_ != text_.size())
      fail(fmt::format("unexpected {} after the end of the document", describe_byte(text_[pos_])));
    return value;
  }

 private:
  [[noreturn]] void fail(const std::string& problem) const { fail_at(problem, pos_); }
  [[noreturn]] void fail_at(const std::string& problem, size_t offset) const {
    throw JsonParseError(fmt::format("{} at byte {}", problem, offset), offset);
  }
  [[noreturn]] void fail_unexpected() const {
    if (at_end()) fail("unexpected end of input");
    fail(fmt::format("unexpected {}", describe_byte(text_[pos_])));
  }

  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }

  void skip_whitespace() {
    while (!at_end()) {
      const char c = text_[pos_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      ++pos_;
    }
  }

  void expect(char c) {
    if (at_end() || text_[pos_] != c) fail_unexpected();
    ++pos_;
  }

  void expect_word(const char* word) {
    for (const char* p = word; *p; ++p) expect(*p);
  }

  Json parse_value(int depth) {
    switch (peek()) {
      case '{': return parse_object(depth + 1);
      case '[': return parse_array(depth + 1);
      case '"': return Json(parse_string());
      case 't': expect_word("true"); return Json(true);
      case 'f': expect_word("false"); return Json(false);
      case 'n': expect_word("null"); return Json();
      default:
        if (peek() == '-' || is_digit(peek())) return parse_number();
        fail_unexpected();
    }
  }

  void check_depth(int depth) const {
    if (depth > kJsonMaxDepth)
      fail(fmt::format("nesting deeper than {} levels", kJsonMaxDepth));
  }

  Json parse_object(int depth) {
    check_depth(depth);
    expect('{');
    Json::Object members;
    // Lookups by a set keep duplicate detection linear for headers with many tensors.
    std::unordered_set<std::string> seen;
    skip_whitespace();
    if (peek() == '}') {
      ++pos_;
      return Json(std::move(members));
    }
    while (true) {
      skip_whitespace();
      const size_t key_offset = pos_;
      if (peek() != '"') fail_unexpected();
      std::string key = parse_string();
      if (!seen.insert(key).second) {
        throw JsonDuplicateKeyError(
            fmt::format("duplicate key \"{}\" at byte {}", key, key_offset), key_offset, key,
            depth);
      }
      skip_whitespace();
      expect(':');
      skip_whitespace();
      Json value = parse_value(depth);
      members.emplace_back(std::move(key), std::move(value));
      skip_whitespace();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == '}') {
        ++pos_;
        return Json(std::move(members));
      }
      fail_unexpected();
    }
  }

  Json parse_array(int depth) {
    check_depth(depth);
    expect('[');
    Json::Array elements;
    skip_whitespace();
    if (peek() == ']') {
      ++pos_;
      return Json(std::move(elements));
    }
    while (true) {
      skip_whitespace();
      elements.push_back(parse_value(depth));
      skip_whitespace();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == ']') {
        ++pos_;
        return Json(std::move(elements));
      }
      fail_unexpected();
    }
  }

  uint32_t parse_hex4() {
    uint32_t value = 0;
    for (int i = 0; i < 4; ++i) {
      if (at_end()) fail("unexpected end of input in \\u escape");
      const char c = text_[pos_];
      uint32_t digit = 0;
      if (c >= '0' && c <= '9') digit = static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') digit = static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') digit = static_cast<uint32_t>(c - 'A' + 10);
      else fail(fmt::format("invalid hex digit {} in \\u escape", describe_byte(c)));
      value = value * 16 + digit;
      ++pos_;
    }
    return value;
  }

  // Called with pos_ just after "\u".
  uint32_t parse_unicode_escape(size_t escape_offset) {
    const uint32_t unit = parse_hex4();
    if (unit >= 0xdc00 && unit <= 0xdfff)
      fail_at(fmt::format("unpaired low surrogate \\u{:04x}", unit), escape_offset);
    if (unit < 0xd800 || unit > 0xdbff) return unit;
    if (text_.compare(pos_, 2, "\\u") != 0)
      fail_at(fmt::format("high surrogate \\u{:04x} not followed by a low surrogate", unit),
              escape_offset);
    pos_ += 2;
    const uint32_t low = parse_hex4();
    if (low < 0xdc00 || low > 0xdfff)
      fail_at(fmt::format("high surrogate \\u{:04x} followed by \\u{:04x}, not a low surrogate",
                          unit, low),
              escape_offset);
    return 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
  }

  std::string parse_string() {
    const size_t start = pos_;
    expect('"');
    std::string out;
    while (true) {
      if (at_end()) fail_at("unterminated string", start);
      const char c = text_[pos_];
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (static_cast<unsigned char>(c) < 0x20)
        fail(fmt::format("control character 0x{:02x} in string", static_cast<unsigned char>(c)));
      if (c != '\\') {
        out += c;
        ++pos_;
        continue;
      }
      const size_t escape_offset = pos_;
      ++pos_;
      if (at_end()) fail_at("unterminated string", start);
      const char kind = text_[pos_++];
      switch (kind) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': append_utf8(out, parse_unicode_escape(escape_offset)); break;
        default:
          fail_at(fmt::format("invalid escape: backslash followed by {}", describe_byte(kind)),
                  escape_offset);
      }
    }
  }

  Json parse_number() {
    const size_t start = pos_;
    if (peek() == '-') ++pos_;
    if (peek() == '0') {
      ++pos_;
    } else if (is_digit(peek())) {
      while (is_digit(peek())) ++pos_;
    } else {
      fail_unexpected();
    }
    bool integral = true;
    if (peek() == '.') {
      integral = false;
      ++pos_;
      if (!is_digit(peek())) fail_unexpected();
      while (is_digit(peek())) ++pos_;
    }
    if (peek() == 'e' || peek() == 'E') {
      integral = false;
      ++pos_;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (!is_digit(peek())) fail_unexpected();
      while (is_digit(peek())) ++pos_;
    }
    const char* first = text_.data() + start;
    const char* last = text_.data() + pos_;
    if (integral) {
      int64_t integer = 0;
      const auto result = std::from_chars(first, last, integer);
      if (result.ec == std::errc() && result.ptr == last) return Json(integer);
      // Out of int64 range: still a valid number, kept as a double.
    }
    // from_chars, unlike strtod, ignores the C locale's decimal separator.
    double value = 0.0;
    const auto result = std::from_chars(first, last, value);
    if (result.ec == std::errc::result_out_of_range && !exceeds_one(first, last)) {
      // Too small for a double: zero is the nearest value, as every other parser gives.
      return Json(*first == '-' ? -0.0 : 0.0);
    }
    if (result.ec != std::errc() || result.ptr != last || !std::isfinite(value))
      fail_at(fmt::format("number '{}' is too large for a double", std::string(first, last)),
              start);
    return Json(value);
  }

  // Whether a grammatically valid number has magnitude >= 1. from_chars leaves its output
  // untouched on range errors, so this tells overflow from underflow.
  static bool exceeds_one(const char* first, const char* last) {
    const char* p = first;
    if (*p == '-') ++p;
    int64_t leading_position = 0;  // decimal exponent of the first non-zero digit
    bool found_nonzero = false;
    int64_t integer_digits = 0;
    for (; p != last && is_digit(*p); ++p) {
      if (found_nonzero) {
        ++integer_digits;
      } else if (*p != '0') {
        found_nonzero = true;
        integer_digits = 1;
      }
    }
    if (found_nonzero) leading_position = integer_digits - 1;
    if (p != last && *p == '.') {
      ++p;
      int64_t fraction_position = 0;
      for (; p != last && is_digit(*p); ++p) {
        --fraction_position;
        if (!found_nonzero && *p != '0') {
          found_nonzero = true;
          leading_position = fraction_position;
        }
      }
    }
    if (!found_nonzero) return false;
    int64_t exponent = 0;
    if (p != last && (*p == 'e' || *p == 'E')) {
      ++p;
      bool negative = false;
      if (*p == '+' || *p == '-') negative = *p++ == '-';
      // Saturate: any exponent this large is decisive on its own.
      for (; p != last; ++p) exponent = std::min<int64_t>(exponent * 10 + (*p - '0'), 1'000'000'000);
      if (negative) exponent = -exponent;
    }
    return leading_position + exponent >= 0;
  }

  const std::string& text_;
  size_t pos_ = 0;
};

void append_escaped(std::string& out, const std::string& text) {
  out += '"';
  for (const char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20)
          out += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
        else
          out += c;
    }
  }
  out += '"';
}

void append_double(std::string& out, double value) {
  if (!std::isfinite(value)) {
    out += "null";
    return;
  }
  // fmt's default is the shortest text that reads back to the same double.
  std::string text = fmt::format("{}", value);
  // Keep doubles recognisable as doubles when read back ("1.0", not "1").
  if (text.find_first_of(".eE") == std::string::npos) text += ".0";
  out += text;
}

void append_newline(std::string& out, int indent, int level) {
  out += '\n';
  out.append(static_cast<size_t>(indent) * static_cast<size_t>(level), ' ');
}

void dump_to(std::string& out, const Json& value, int indent, int level) {
  const bool pretty = indent >= 0;
  switch (value.type()) {
    case Json::Type::null: out += "null"; return;
    case Json::Type::boolean: out += value.as_bool() ? "true" : "false"; return;
    case Json::Type::number:
      if (value.is_integer()) out += std::to_string(value.as_int());
      else append_double(out, value.as_double());
      return;
    case Json::Type::string: append_escaped(out, value.as_string()); return;
    case Json::Type::array: {
      const auto& elements = value.as_array();
      if (elements.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < elements.size(); ++i) {
        if (i > 0) out += ',';
        if (pretty) append_newline(out, indent, level + 1);
        dump_to(out, elements[i], indent, level + 1);
      }
      if (pretty) append_newline(out, indent, level);
      out += ']';
      return;
    }
    case Json::Type::object: {
      const auto& members = value.as_object();
      if (members.empty()) {
        out += "{}";
        return;
      }
      out += '{';
      for (size_t i = 0; i < members.size(); ++i) {
        if (i > 0) out += ',';
        if (pretty) append_newline(out, indent, level + 1);
        append_escaped(out, members[i].first);
        out += pretty ? ": " : ":";
        dump_to(out, members[i].second, indent, level + 1);
      }
      if (pretty) append_newline(out, indent, level);
      out += '}';
      return;
    }
  }
}

std::string dotted(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

const Json& require_member(const Json& object, const std::string& key, const std::string& path) {
  if (!object.is_object())
    throw std::runtime_error(
        fmt::format("{}: expected an object", path.empty() ? "top level" : path));
  const Json* value = object.find(key);
  if (!value) throw std::runtime_error(dotted(path, key) + ": missing");
  return *value;
}

}  // namespace

Json::Json(bool value) : type_(Type::boolean), bool_(value) {}
Json::Json(int value) : Json(static_cast<int64_t>(value)) {}
Json::Json(int64_t value)
    : type_(Type::number), number_(static_cast<double>(value)), integer_(value), is_integer_(true) {}
Json::Json(uint64_t value) : type_(Type::number), number_(static_cast<double>(value)) {
  if (value <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    integer_ = static_cast<int64_t>(value);
    is_integer_ = true;
  }
}
Json::Json(double value) : type_(Type::number), number_(value) {}
Json::Json(const char* value) : type_(Type::string), string_(value) {}
Json::Json(std::string value) : type_(Type::string), string_(std::move(value)) {}
Json::Json(Array value) : type_(Type::array), array_(std::move(value)) {}
Json::Json(Object value) : type_(Type::object), object_(std::move(value)) {}

bool Json::as_bool() const {
  if (type_ != Type::boolean) throw_type_mismatch("a boolean", type_);
  return bool_;
}

double Json::as_double() const {
  if (type_ != Type::number) throw_type_mismatch("a number", type_);
  return is_integer_ ? static_cast<double>(integer_) : number_;
}

int64_t Json::as_int() const {
  if (type_ != Type::number) throw_type_mismatch("an integer", type_);
  if (!is_integer_)
    throw std::runtime_error(fmt::format("expected an integer, got {}", number_));
  return integer_;
}

const std::string& Json::as_string() const {
  if (type_ != Type::string) throw_type_mismatch("a string", type_);
  return string_;
}

const Json::Array& Json::as_array() const {
  if (type_ != Type::array) throw_type_mismatch("an array", type_);
  return array_;
}

Json::Array& Json::as_array() {
  if (type_ != Type::array) throw_type_mismatch("an array", type_);
  return array_;
}

const Json::Object& Json::as_object() const {
  if (type_ != Type::object) throw_type_mismatch("an object", type_);
  return object_;
}

Json::Object& Json::as_object() {
  if (type_ != Type::object) throw_type_mismatch("an object", type_);
  return object_;
}

const Json* Json::find(const std::string& key) const {
  if (type_ != Type::object) return nullptr;
  for (const auto& member : object_) {
    if (member.first == key) return &member.second;
  }
  return nullptr;
}

const Json& Json::at(const std::string& key) const {
  if (type_ != Type::object)
    throw std::runtime_error(fmt::format("{}: expected an object, got {}", key, type_name(type_)));
  const Json* value = find(key);
  if (!value) throw std::runtime_error(key + ": missing");
  return *value;
}

Json& Json::set(const std::string& key, Json value) {
  for (auto& member : as_object()) {
    if (member.first == key) {
      member.second = std::move(value);
      return member.second;
    }
  }
  object_.emplace_back(key, std::move(value));
  return object_.back().second;
}

void Json::push_back(Json value) { as_array().push_back(std::move(value)); }

size_t Json::size() const {
  if (type_ == Type::array) return array_.size();
  if (type_ == Type::object) return object_.size();
  throw_type_mismatch("an array or an object", type_);
}

std::string Json::dump(int indent) const {
  std::string out;
  dump_to(out, *this, indent, 0);
  return out;
}

Json Json::parse(const std::string& text) { return Parser(text).parse_document(); }

bool Json::operator==(const Json& other) const {
  if (type_ != other.type_) return false;
  switch (type_) {
    case Type::null: return true;
    case Type::boolean: return bool_ == other.bool_;
    case Type::number:
      if (is_integer_ && other.is_integer_) return integer_ == other.integer_;
      return as_double() == other.as_double();
    case Type::string: return string_ == other.string_;
    case Type::array: return array_ == other.array_;
    case Type::object: {
      if (object_.size() != other.object_.size()) return false;
      for (const auto& member : object_) {
        const Json* counterpart = other.find(member.first);
        if (!counterpart || !(member.second == *counterpart)) return false;
      }
      return true;
    }
  }
  return false;
}

int64_t json_int(const Json& object, const std::string& key, const std::string& path) {
  const Json& value = require_member(object, key, path);
  if (!value.is_integer())
    throw std::runtime_error(fmt::format("{}: expected an integer, got {}", dotted(path, key),
                                         value.is_number() ? value.dump() : type_name(value.type())));
  return value.as_int();
}

double json_double(const Json& object, const std::string& key, const std::string& path) {
  const Json& value = require_member(object, key, path);
  if (!value.is_number())
    throw std::runtime_error(
        fmt::format("{}: expected a number, got {}", dotted(path, key), type_name(value.type())));
  return value.as_double();
}

bool json_bool(const Json& object, const std::string& key, const std::string& path) {
  const Json& value = require_member(object, key, path);
  if (!value.is_bool())
    throw std::runtime_error(
        fmt::format("{}: expected a boolean, got {}", dotted(path, key), type_name(value.type())));
  return value.as_bool();
}

std::string json_string(const Json& object, const std::string& key, const std::string& path) {
  const Json& value = require_member(object, key, path);
  if (!value.is_string())
    throw std::runtime_error(
        fmt::format("{}: expected a string, got {}", dotted(path, key), type_name(value.type())));
  return value.as_string();
}

std::vector<int64_t> json_int_list(const Json& object, const std::string& key,
                                   const std::string& path) {
  const Json& value = require_member(object, key, path);
  if (!value.is_array())
    throw std::runtime_error(fmt::format("{}: expected a list of integers, got {}",
                                         dotted(path, key), type_name(value.type())));
  std::vector<int64_t> out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    const Json& element = value.as_array()[i];
    if (!element.is_integer())
      throw std::runtime_error(fmt::format("{}[{}]: expected an integer, got {}", dotted(path, key),
                                           i, element.is_number() ? element.dump()
                                                                  : type_name(element.type())));
    out.push_back(element.as_int());
  }
  return out;
}

bool is_valid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto byte = static_cast<unsigned char>(text[i]);
    size_t length = 0;
    uint32_t code_point = 0, minimum = 0;
    if (byte < 0x80) {
      ++i;
      continue;
    } else if ((byte & 0xe0) == 0xc0) {
      length = 2, code_point = byte & 0x1f, minimum = 0x80;
    } else if ((byte & 0xf0) == 0xe0) {
      length = 3, code_point = byte & 0x0f, minimum = 0x800;
    } else if ((byte & 0xf8) == 0xf0) {
      length = 4, code_point = byte & 0x07, minimum = 0x10000;
    } else {
      return false;
    }
    if (i + length > text.size()) return false;
    for (size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xc0) != 0x80) return false;
      code_point = (code_point << 6) | (next & 0x3f);
    }
    if (code_point < minimum || code_point > 0x10ffff || (code_point >= 0xd800 && code_point <= 0xdfff)) return false;
    i += length;
  }
  return true;
}

}  // namespace maskgit
