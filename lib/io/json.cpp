#include "io/json.h"

#include <fmt/format.h>

#include <cstddef>
#include <iterator>
#include <limits>
#include <unordered_set>

namespace maskgit {
namespace {

// A character as it should appear in an error message: printable ASCII quoted, anything
// else as a hex byte so that the message itself stays readable.
std::string describe_byte(char c) {
  const auto byte = static_cast<unsigned char>(c);
  if (byte >= 0x20 && byte < 0x7f) return fmt::format("character '{}'", c);
  return fmt::format("byte 0x{:02x}", byte);
}

[[noreturn]] void fail_at(const std::string& problem, size_t offset) {
  throw JsonParseError(fmt::format("{} at byte {}", problem, offset), offset);
}

// "unexpected character 'x'" for the byte at `offset`, or "unexpected end of input" past the end.
std::string unexpected_at(std::string_view text, size_t offset) {
  if (offset >= text.size()) return "unexpected end of input";
  return "unexpected " + describe_byte(text[offset]);
}

// An iterator over the text that records how far nlohmann's lexer has read, so that the parser
// callback (which is given no position) can name the byte of a duplicate key or a nesting too
// deep. The lexer reads a character at a time and, after structural characters, strings and
// literals, never ahead.
class TrackingIterator {
 public:
  using iterator_category = std::forward_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  TrackingIterator(const char* position, size_t* consumed) : position_(position), consumed_(consumed) {}
  reference operator*() const { return *position_; }
  TrackingIterator& operator++() {
    ++position_;
    ++*consumed_;
    return *this;
  }
  TrackingIterator operator++(int) {
    TrackingIterator before = *this;
    ++*this;
    return before;
  }
  bool operator==(const TrackingIterator& other) const { return position_ == other.position_; }
  bool operator!=(const TrackingIterator& other) const { return position_ != other.position_; }

 private:
  const char* position_;
  size_t* consumed_;
};

// The \uXXXX escape starting at `at`, or -1.
long escape_at(std::string_view text, long at) {
  if (at < 0 || static_cast<size_t>(at) + 6 > text.size()) return -1;
  if (text[static_cast<size_t>(at)] != '\\' || text[static_cast<size_t>(at) + 1] != 'u') return -1;
  long value = 0;
  for (size_t i = 2; i < 6; ++i) {
    const char c = text[static_cast<size_t>(at) + i];
    long digit = 0;
    if (c >= '0' && c <= '9') digit = c - '0';
    else if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
    else return -1;
    value = value * 16 + digit;
  }
  return value;
}

bool is_high_surrogate(long unit) { return unit >= 0xd800 && unit <= 0xdbff; }

// The offset of the opening quote of the string whose content reaches up to `end`: the nearest
// quote before `end` that is not escaped (preceded by an even number of backslashes).
size_t string_start(std::string_view text, size_t end) {
  for (size_t i = std::min(end, text.size()); i-- > 0;) {
    if (text[i] != '"') continue;
    size_t backslashes = 0;
    while (backslashes < i && text[i - 1 - backslashes] == '\\') ++backslashes;
    if (backslashes % 2 == 0) return i;
  }
  return 0;
}

bool is_whitespace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Where the (valid) value that starts the text ends; used to name the first byte after the
// document, since nlohmann reports the end of the offending token instead.
size_t value_end(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size() && is_whitespace(text[pos])) ++pos;
  if (pos >= text.size()) return pos;
  const char first = text[pos];
  const auto skip_string = [&] {
    for (++pos; pos < text.size() && text[pos] != '"'; ++pos)
      if (text[pos] == '\\') ++pos;
    return ++pos;
  };
  if (first == '"') return skip_string();
  if (first == '{' || first == '[') {
    int depth = 0;
    while (pos < text.size()) {
      const char c = text[pos];
      if (c == '"') {
        skip_string();
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') --depth;
      ++pos;
      if (depth == 0) return pos;
    }
    return pos;
  }
  if (first == 't' || first == 'n') return pos + 4;
  if (first == 'f') return pos + 5;
  // A number: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
  const auto digits = [&] {
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') ++pos;
  };
  if (text[pos] == '-') ++pos;
  if (pos < text.size() && text[pos] == '0') ++pos;
  else digits();
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    digits();
  }
  if (pos < text.size() && (text[pos] == 'e' || text[pos] == 'E')) {
    ++pos;
    if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) ++pos;
    digits();
  }
  return pos;
}

// Turns one of nlohmann's syntax errors into our message. `offset` is that of the last byte
// nlohmann read (the end of the input when it ran out); `text` is the whole document, so that
// a NUL byte (the end of nlohmann's input, see parse_json) is named as what it is.
[[noreturn]] void reword_syntax_error(std::string_view text, size_t offset, const std::string& what) {
  // "[json.exception.parse_error.101] parse error at line L, column C: syntax error while
  // parsing CONTEXT - PROBLEM[; last read: 'TOKEN'][; expected TOKEN KIND]": only TOKEN comes
  // from the document, so look for the problem in what precedes it.
  const std::string_view head = std::string_view(what).substr(0, what.find("; last read: '"));
  const auto has = [&](const char* needle) { return head.find(needle) != std::string::npos; };
  const long at = static_cast<long>(offset);
  constexpr std::string_view kAfterEnd = "; expected end of input";
  if (what.size() >= kAfterEnd.size() && std::string_view(what).substr(what.size() - kAfterEnd.size()) == kAfterEnd) {
    size_t start = value_end(text);
    while (start < text.size() && is_whitespace(text[start])) ++start;
    fail_at(unexpected_at(text, start) + " after the end of the document", start);
  }
  if (has("invalid string: missing closing quote")) {
    if (offset < text.size())  // a NUL byte inside the string
      fail_at(fmt::format("control character 0x{:02x} in string", static_cast<unsigned char>(text[offset])),
              offset);
    fail_at("unterminated string", string_start(text, offset));
  }
  if (has("invalid string: control character"))
    fail_at(fmt::format("control character 0x{:02x} in string", static_cast<unsigned char>(text[offset])), offset);
  if (has("invalid string: ill-formed UTF-8 byte")) fail_at("invalid UTF-8 in string", offset);
  if (has("invalid string: forbidden character after backslash")) {
    if (offset >= text.size()) fail_at("unterminated string", string_start(text, offset - 1));
    fail_at(fmt::format("invalid escape: backslash followed by {}", describe_byte(text[offset])), offset - 1);
  }
  if (has("must be followed by 4 hex digits")) {
    if (offset >= text.size()) fail_at("unexpected end of input in \\u escape", offset);
    fail_at(fmt::format("invalid hex digit {} in \\u escape", describe_byte(text[offset])), offset);
  }
  if (has("surrogate U+DC00..U+DFFF must follow"))  // read up to the escape's last digit
    fail_at(fmt::format("unpaired low surrogate \\u{:04x}", escape_at(text, at - 5)), offset - 5);
  if (has("surrogate U+D800..U+DBFF must be followed")) {
    // After the high surrogate nlohmann reads "\u" and four digits, or up to the first byte
    // that is not that.
    if (is_high_surrogate(escape_at(text, at - 11)) && escape_at(text, at - 5) >= 0)
      fail_at(fmt::format("high surrogate \\u{:04x} followed by \\u{:04x}, not a low surrogate",
                          escape_at(text, at - 11), escape_at(text, at - 5)),
              offset - 11);
    for (const long back : {6L, 7L}) {
      if (is_high_surrogate(escape_at(text, at - back)))
        fail_at(fmt::format("high surrogate \\u{:04x} not followed by a low surrogate", escape_at(text, at - back)),
                offset - static_cast<size_t>(back));
    }
    fail_at("high surrogate not followed by a low surrogate", offset);
  }
  // A whole token where it does not belong: named by its first byte (nlohmann stops at its last).
  if (has("unexpected string literal") && offset < text.size() && text[offset] == '"') {
    const size_t start = string_start(text, offset);
    fail_at(unexpected_at(text, start), start);
  }
  for (const std::string_view literal : {"true", "false", "null"}) {
    if (has(fmt::format("unexpected {} literal", literal).c_str()) && offset + 1 >= literal.size()) {
      const size_t start = offset + 1 - literal.size();
      fail_at(unexpected_at(text, start), start);
    }
  }
  if (has("unexpected number literal") && offset < text.size()) {
    size_t start = offset;
    while (start > 0 && std::string_view("0123456789.eE+-").find(text[start - 1]) != std::string_view::npos) --start;
    fail_at(unexpected_at(text, start), start);
  }
  // Anything else is an invalid literal or number, a structural character where it does not
  // belong, or the input running out: all named by the byte nlohmann stopped at.
  fail_at(unexpected_at(text, offset), offset);
}

// Builds the value from nlohmann's SAX events, adding our checks. (nlohmann's own DOM builder
// inserts each key of an ordered_json object with a linear search for it, quadratic in the
// member count: a hostile header with a million names would take hours. Keys are checked for
// duplicates here, by hash, and appended.)
class StrictBuilder {
 public:
  StrictBuilder(std::string_view text, std::string_view whole, const size_t* consumed)
      : text_(text), whole_(whole), consumed_(consumed) {}

  Json& result() { return root_; }

  bool null() { return add(nullptr); }
  bool boolean(bool value) { return add(value); }
  bool number_integer(Json::number_integer_t value) { return add(value); }
  bool number_unsigned(Json::number_unsigned_t value) { return add(value); }
  bool number_float(Json::number_float_t value, const Json::string_t&) { return add(value); }
  bool string(Json::string_t& value) { return add(std::move(value)); }
  bool binary(Json::binary_t&) { return false; }  // not produced by the JSON lexer

  bool start_object(size_t) { return open(Json::value_t::object); }
  bool start_array(size_t) { return open(Json::value_t::array); }
  bool end_object() {
    keys_.pop_back();
    stack_.pop_back();
    return true;
  }
  bool end_array() {
    stack_.pop_back();
    return true;
  }

  bool key(Json::string_t& key) {
    // The lexer has just read the key's closing quote.
    if (!keys_.back().insert(key).second) {
      const size_t offset = string_start(text_, *consumed_ - 1);
      throw JsonDuplicateKeyError(fmt::format("duplicate key \"{}\" at byte {}", key, offset), offset, key,
                                  static_cast<int>(stack_.size()));
    }
    // ordered_map is a vector of pairs; its own insertion would search for the key first.
    auto& members = stack_.back()->get_ref<Json::object_t&>();
    members.emplace_back(std::move(key), nullptr);
    member_ = &members.back().second;
    return true;
  }

  // `position` counts the bytes read, from 1, including the end of the input.
  bool parse_error(size_t position, const std::string& token, const nlohmann::json::exception& error) {
    const size_t last = position > 0 ? position - 1 : 0;
    if (error.id == 406) {  // out_of_range: a number too large for a double, just read
      const size_t start = position >= token.size() ? position - token.size() : 0;
      fail_at(fmt::format("number '{}' is too large for a double", token), start);
    }
    reword_syntax_error(whole_, last, error.what());
  }

 private:
  template <typename Value>
  bool add(Value&& value) {
    place(Json(std::forward<Value>(value)));
    return true;
  }

  Json* place(Json&& value) {
    if (stack_.empty()) {
      root_ = std::move(value);
      return &root_;
    }
    Json& parent = *stack_.back();
    if (parent.is_array()) {
      auto& elements = parent.get_ref<Json::array_t&>();
      elements.push_back(std::move(value));
      return &elements.back();
    }
    *member_ = std::move(value);
    return member_;
  }

  bool open(Json::value_t type) {
    // The lexer has just read the bracket.
    if (stack_.size() >= static_cast<size_t>(kJsonMaxDepth))
      fail_at(fmt::format("nesting deeper than {} levels", kJsonMaxDepth), *consumed_ - 1);
    stack_.push_back(place(Json(type)));
    if (type == Json::value_t::object) keys_.emplace_back();
    return true;
  }

  std::string_view text_;   // what nlohmann reads
  std::string_view whole_;  // the whole document (with what follows a NUL byte)
  const size_t* consumed_;  // bytes of text_ the lexer has read
  Json root_;
  std::vector<Json*> stack_;  // the open arrays and objects, innermost last
  Json* member_ = nullptr;    // the value of the key just read
  std::vector<std::unordered_set<std::string>> keys_;  // of each open object
};

Json parse_strictly(std::string_view text, std::string_view whole) {
  size_t consumed = 0;
  StrictBuilder builder(text, whole, &consumed);
  Json::sax_parse(TrackingIterator(text.data(), &consumed), TrackingIterator(text.data() + text.size(), &consumed),
                  &builder);
  return std::move(builder.result());
}

}  // namespace

Json parse_json(std::string_view text) {
  // nlohmann skips a UTF-8 byte-order mark, which RFC 8259 forbids in what we exchange.
  if (!text.empty() && static_cast<unsigned char>(text[0]) == 0xef) fail_at(unexpected_at(text, 0), 0);
  // nlohmann takes a NUL byte for the end of the input: give it only what comes before one, and
  // refuse the NUL itself (raw control characters are not allowed in strings either).
  const size_t nul = text.find('\0');
  const std::string_view before = text.substr(0, nul);
  Json value = parse_strictly(before, text);
  if (nul != std::string_view::npos) fail_at(unexpected_at(text, nul) + " after the end of the document", nul);
  return value;
}

std::string dump_json(const Json& value, int indent) {
  return value.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

const char* json_type_name(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::boolean: return "a boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float: return "a number";
    case Json::value_t::string: return "a string";
    case Json::value_t::array: return "an array";
    case Json::value_t::object: return "an object";
    case Json::value_t::binary: return "binary data";
    case Json::value_t::discarded: return "a discarded value";
  }
  return "an unknown value";
}

std::optional<int64_t> json_as_int64(const Json& value) {
  if (value.is_number_unsigned()) {
    const auto number = value.get<uint64_t>();
    if (number > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(number);
  }
  if (value.is_number_integer()) return value.get<int64_t>();
  return std::nullopt;
}

const Json* json_find(const Json& object, const std::string& key) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

namespace {

std::string dotted(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

// What a value that should have been an integer is, for messages: the number itself, or its type.
std::string describe_non_integer(const Json& value) {
  if (value.is_number_unsigned()) return dump_json(value) + " (more than 2^63-1)";
  return value.is_number() ? dump_json(value) : json_type_name(value);
}

}  // namespace

const Json& json_member(const Json& object, const std::string& key, const std::string& path) {
  if (!object.is_object())
    throw std::runtime_error(fmt::format("{}: expected an object", path.empty() ? "top level" : path));
  const Json* value = json_find(object, key);
  if (!value) throw std::runtime_error(dotted(path, key) + ": missing");
  return *value;
}

int64_t json_int(const Json& object, const std::string& key, const std::string& path) {
  const Json& value = json_member(object, key, path);
  const std::optional<int64_t> integer = json_as_int64(value);
  if (!integer)
    throw std::runtime_error(
        fmt::format("{}: expected an integer, got {}", dotted(path, key), describe_non_integer(value)));
  return *integer;
}

double json_double(const Json& object, const std::string& key, const std::string& path) {
  const Json& value = json_member(object, key, path);
  if (!value.is_number())
    throw std::runtime_error(fmt::format("{}: expected a number, got {}", dotted(path, key), json_type_name(value)));
  return value.get<double>();
}

bool json_bool(const Json& object, const std::string& key, const std::string& path) {
  const Json& value = json_member(object, key, path);
  if (!value.is_boolean())
    throw std::runtime_error(fmt::format("{}: expected a boolean, got {}", dotted(path, key), json_type_name(value)));
  return value.get<bool>();
}

std::string json_string(const Json& object, const std::string& key, const std::string& path) {
  const Json& value = json_member(object, key, path);
  if (!value.is_string())
    throw std::runtime_error(fmt::format("{}: expected a string, got {}", dotted(path, key), json_type_name(value)));
  return value.get<std::string>();
}

std::vector<int64_t> json_int_list(const Json& object, const std::string& key, const std::string& path) {
  const Json& value = json_member(object, key, path);
  if (!value.is_array())
    throw std::runtime_error(
        fmt::format("{}: expected a list of integers, got {}", dotted(path, key), json_type_name(value)));
  std::vector<int64_t> out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    const std::optional<int64_t> element = json_as_int64(value[i]);
    if (!element)
      throw std::runtime_error(fmt::format("{}[{}]: expected an integer, got {}", dotted(path, key), i,
                                           describe_non_integer(value[i])));
    out.push_back(*element);
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
