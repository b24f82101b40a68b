#include "io/json.h"

#include <chrono>
#include <limits>
#include <string>

#include <catch2/catch.hpp>

using maskgit::dump_json;
using maskgit::Json;
using maskgit::JsonDuplicateKeyError;
using maskgit::JsonParseError;
using maskgit::parse_json;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

// The parse error for `text`, or an empty message with offset max when it parses.
JsonParseError parse_error(const std::string& text) {
  try {
    parse_json(text);
  } catch (const JsonParseError& e) {
    return e;
  }
  return JsonParseError("", std::numeric_limits<size_t>::max());
}

}  // namespace

TEST_CASE("json: scalars parse to the right types", "[json]") {
  CHECK(parse_json("null").is_null());
  CHECK(parse_json("true").get<bool>() == true);
  CHECK(parse_json("false").get<bool>() == false);
  CHECK(parse_json("\"hi\"").get<std::string>() == "hi");
  CHECK(parse_json("  \n\t 42 \r\n").get<int64_t>() == 42);
}

TEST_CASE("json: integers and doubles are told apart", "[json]") {
  const Json integer = parse_json("-17");
  CHECK(integer.is_number_integer());
  CHECK(maskgit::json_as_int64(integer) == -17);
  CHECK(integer.get<double>() == -17.0);

  for (const char* text : {"1.0", "1e3", "1E-3", "-0.5", "2.5e+10"}) {
    INFO(text);
    const Json value = parse_json(text);
    CHECK(value.is_number_float());
    CHECK_FALSE(value.is_number_integer());
    CHECK_FALSE(maskgit::json_as_int64(value));
  }
  CHECK(parse_json("1e3").get<double>() == 1000.0);

  CHECK(maskgit::json_as_int64(parse_json("9223372036854775807")) == std::numeric_limits<int64_t>::max());
  CHECK(maskgit::json_as_int64(parse_json("-9223372036854775808")) == std::numeric_limits<int64_t>::min());
  // Up to 2^64-1 (seeds): exact integers, not int64 (json_as_int64 and json_int refuse them).
  const Json big = parse_json("9223372036854775808");
  CHECK(big.is_number_unsigned());
  CHECK(big.get<uint64_t>() == uint64_t{1} << 63);
  CHECK_FALSE(maskgit::json_as_int64(big));
  const Json largest = parse_json("18446744073709551615");
  CHECK(largest.is_number_unsigned());
  CHECK(largest.get<uint64_t>() == std::numeric_limits<uint64_t>::max());
  CHECK(dump_json(largest) == "18446744073709551615");
  // Past 2^64-1: still a number, but only as a double.
  CHECK(parse_json("18446744073709551616").is_number_float());
  CHECK(parse_json("-9223372036854775809").is_number_float());

  // Seeds are written as exact integers, read back the same.
  const uint64_t seed = std::numeric_limits<uint64_t>::max() - 6;
  CHECK(dump_json(Json{{"seed", seed}}) == R"({"seed":18446744073709551609})");
  CHECK(parse_json(dump_json(Json{{"seed", seed}})).at("seed").get<uint64_t>() == seed);
  CHECK(Json(uint64_t{5}).is_number_integer());
  CHECK_FALSE(Json(3.0).is_number_integer());
}

TEST_CASE("json: extreme exponents", "[json]") {
  CHECK(parse_json("1e-400").get<double>() == 0.0);
  CHECK(parse_json("0.0000000000000000000000000000001e-300").get<double>() == 0.0);
  CHECK_THROWS_WITH(parse_json("1e400"), "number '1e400' is too large for a double at byte 0");
  CHECK_THROWS_WITH(parse_json("[-1e400]"), "number '-1e400' is too large for a double at byte 1");
  CHECK_THROWS_WITH(parse_json("{\"a\": 1E+999 }"), Contains("too large") && Contains("at byte 6"));
  CHECK_THROWS_AS(parse_json("[-1e400]"), JsonParseError);
}

TEST_CASE("json: string escapes and unicode", "[json]") {
  CHECK(parse_json(R"("a\"b\\c\/d\b\f\n\r\t")").get<std::string>() == "a\"b\\c/d\b\f\n\r\t");
  CHECK(parse_json(R"("\u0041\u00e9\u20ac")").get<std::string>() == "A\xc3\xa9\xe2\x82\xac");
  // A surrogate pair becomes one four-byte UTF-8 sequence (U+1F600).
  CHECK(parse_json(R"("\ud83d\ude00")").get<std::string>() == "\xf0\x9f\x98\x80");
  CHECK(parse_json(R"("\uD83D\uDE00")").get<std::string>() == "\xf0\x9f\x98\x80");
  // Raw UTF-8 passes through untouched.
  CHECK(parse_json("\"caf\xc3\xa9\"").get<std::string>() == "caf\xc3\xa9");
  CHECK(parse_json(R"("\u0000")").get<std::string>() == std::string(1, '\0'));

  CHECK_THROWS_WITH(parse_json(R"("\ude00")"), "unpaired low surrogate \\ude00 at byte 1");
  CHECK_THROWS_WITH(parse_json(R"("\ud83d")"), "high surrogate \\ud83d not followed by a low surrogate at byte 1");
  CHECK_THROWS_WITH(parse_json(R"("\ud83dx")"), "high surrogate \\ud83d not followed by a low surrogate at byte 1");
  CHECK_THROWS_WITH(parse_json(R"(["\ud83d\x"])"),
                    "high surrogate \\ud83d not followed by a low surrogate at byte 2");
  CHECK_THROWS_WITH(parse_json(R"("\ud83d\u0041")"),
                    "high surrogate \\ud83d followed by \\u0041, not a low surrogate at byte 1");
  CHECK_THROWS_WITH(parse_json(R"("\u12g4")"), "invalid hex digit character 'g' in \\u escape at byte 5");
  CHECK_THROWS_WITH(parse_json(R"("\u12)"), "unexpected end of input in \\u escape at byte 5");
  CHECK_THROWS_WITH(parse_json(R"("\q")"), "invalid escape: backslash followed by character 'q' at byte 1");
  CHECK_THROWS_WITH(parse_json("\"a\nb\""), "control character 0x0a in string at byte 2");
  CHECK_THROWS_WITH(parse_json("\"a\tb\""), Contains("control character 0x09"));
  CHECK_THROWS_WITH(parse_json(std::string("\"a\0b\"", 5)), "control character 0x00 in string at byte 2");
  CHECK_THROWS_WITH(parse_json("\"abc"), "unterminated string at byte 0");
  CHECK_THROWS_WITH(parse_json("[\"abc\\"), "unterminated string at byte 1");
  CHECK_THROWS_WITH(parse_json(R"(["x", "a\"bc)"), "unterminated string at byte 6");
}

TEST_CASE("json: strings must be UTF-8", "[json]") {
  CHECK_THROWS_WITH(parse_json("\"\xff\""), "invalid UTF-8 in string at byte 1");
  CHECK_THROWS_WITH(parse_json("[\"ok\", \"caf\xc3\""), "invalid UTF-8 in string at byte 12");
  CHECK_THROWS_WITH(parse_json("\"\xc0\xaf\""), Contains("invalid UTF-8"));      // overlong '/'
  CHECK_THROWS_WITH(parse_json("\"\xed\xa0\x80\""), Contains("invalid UTF-8"));  // a surrogate
  CHECK_THROWS_WITH(parse_json("{\"\xf4\x90\x80\x80\":1}"), Contains("invalid UTF-8"));  // above U+10FFFF
  // Outside strings a non-ASCII byte is no token at all.
  CHECK_THROWS_WITH(parse_json("[\xc3\xa9]"), "unexpected byte 0xc3 at byte 1");
  // A byte-order mark is refused, not skipped.
  CHECK_THROWS_WITH(parse_json("\xef\xbb\xbf{}"), "unexpected byte 0xef at byte 0");
}

TEST_CASE("json: dump escapes strings so they parse back", "[json]") {
  const std::string nasty = std::string("quote\" backslash\\ newline\n tab\t bell\x07 nul") +
                            std::string(1, '\0') + " \xe2\x82\xac";
  const std::string text = dump_json(Json(nasty));
  CHECK(text.find('\n') == std::string::npos);
  CHECK_THAT(text, Contains("\\u0007") && Contains("\\u0000") && Contains("\\\"") &&
                       Contains("\\\\") && Contains("\\n") && Contains("\xe2\x82\xac"));
  CHECK(parse_json(text).get<std::string>() == nasty);
  // Bytes that are not UTF-8 (a file name can hold any) become U+FFFD instead of failing.
  CHECK(dump_json(Json{{"file", "a\xff.png"}}) == "{\"file\":\"a\xef\xbf\xbd.png\"}");
}

TEST_CASE("json: numbers dump as integers or round-tripping doubles", "[json]") {
  CHECK(dump_json(Json(42)) == "42");
  CHECK(dump_json(Json(int64_t{-9007199254740993})) == "-9007199254740993");
  CHECK(dump_json(Json(std::numeric_limits<int64_t>::min())) == "-9223372036854775808");
  CHECK(dump_json(Json(1.0)) == "1.0");
  CHECK(dump_json(Json(0.5)) == "0.5");
  CHECK(dump_json(Json(std::numeric_limits<double>::quiet_NaN())) == "null");
  CHECK(dump_json(Json(std::numeric_limits<double>::infinity())) == "null");
  CHECK(dump_json(Json(-std::numeric_limits<double>::infinity())) == "null");

  for (const double value : {0.1, 1.0 / 3.0, 1e-7, 6.02214076e23, 1e300, -2.5e-308,
                             std::numeric_limits<double>::max(),
                             std::numeric_limits<double>::denorm_min(), 123456789.0}) {
    INFO(value);
    const Json back = parse_json(dump_json(Json(value)));
    CHECK(back.is_number_float());
    CHECK(back.get<double>() == value);
  }
}

TEST_CASE("json: documents round-trip through dump and parse", "[json]") {
  Json document = Json::object();
  document["name"] = "maskgit";
  document["size"] = 256;
  document["eps"] = 1e-6;
  document["flag"] = true;
  document["nothing"] = nullptr;
  Json list = Json::array();
  list.push_back(1);
  list.push_back("two");
  list.push_back(Json::array());
  list.push_back(Json::object());
  document["list"] = list;
  document["nested"] = Json{{"deep", Json::array({1, Json{{"x", 2.5}}})}};

  for (const int indent : {-1, 0, 2, 4}) {
    INFO(indent);
    const std::string text = dump_json(document, indent);
    const Json back = parse_json(text);
    CHECK(back == document);
    CHECK(dump_json(back, indent) == text);  // dump is deterministic and keeps key order
  }
  CHECK(dump_json(document) ==
        R"({"name":"maskgit","size":256,"eps":1e-06,"flag":true,"nothing":null,)"
        R"("list":[1,"two",[],{}],"nested":{"deep":[1,{"x":2.5}]}})");
}

TEST_CASE("json: pretty printing layout", "[json]") {
  Json document = Json::object();
  document["a"] = Json::array({1, 2});
  document["b"] = Json::object();
  CHECK(dump_json(document, 2) == "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": {}\n}");
}

TEST_CASE("json: objects keep insertion order and assignment replaces in place", "[json]") {
  Json object = parse_json(R"({"z":1,"a":2,"m":3})");
  CHECK(dump_json(object) == R"({"z":1,"a":2,"m":3})");
  object["a"] = "changed";
  CHECK(dump_json(object) == R"({"z":1,"a":"changed","m":3})");
  CHECK(object.size() == 3);
  CHECK(maskgit::json_find(object, "m") != nullptr);
  CHECK(maskgit::json_find(object, "q") == nullptr);
  CHECK(maskgit::json_find(Json::array({1}), "q") == nullptr);
  CHECK_THROWS_WITH(maskgit::json_member(object, "q", ""), "q: missing");
  CHECK_THROWS_WITH(maskgit::json_member(object, "q", "sampling"), "sampling.q: missing");
  // ordered_json compares objects in order; numbers by value.
  CHECK(parse_json(R"({"a":1,"b":2})") != parse_json(R"({"b":2,"a":1})"));
  CHECK(parse_json("[1,2]") != parse_json("[2,1]"));
  CHECK(parse_json("1") == parse_json("1.0"));
}

TEST_CASE("json: syntax errors name the problem and byte offset", "[json]") {
  struct Case {
    const char* text;
    const char* message;
    size_t offset;
  };
  const Case cases[] = {
      {"", "unexpected end of input at byte 0", 0},
      {"   ", "unexpected end of input at byte 3", 3},
      {"{\"a\": 1,}", "unexpected character '}' at byte 8", 8},
      {"[1, 2,]", "unexpected character ']' at byte 6", 6},
      {"[1 2]", "unexpected character '2' at byte 3", 3},
      {"[1 234]", "unexpected character '2' at byte 3", 3},
      {"[1 \"str\"]", "unexpected character '\"' at byte 3", 3},
      {"[1 true]", "unexpected character 't' at byte 3", 3},
      {"{\"a\" 1}", "unexpected character '1' at byte 5", 5},
      {"{a:1}", "unexpected character 'a' at byte 1", 1},
      {"{\"key\": \"value\", \"n\": x}", "unexpected character 'x' at byte 22", 22},
      {"tru", "unexpected end of input at byte 3", 3},
      {"trUe", "unexpected character 'U' at byte 2", 2},
      {"nul", "unexpected end of input at byte 3", 3},
      {"01", "unexpected character '1' after the end of the document at byte 1", 1},
      {"-", "unexpected end of input at byte 1", 1},
      {"-a", "unexpected character 'a' at byte 1", 1},
      {"1.", "unexpected end of input at byte 2", 2},
      {"1.e5", "unexpected character 'e' at byte 2", 2},
      {"1e", "unexpected end of input at byte 2", 2},
      {"1e+", "unexpected end of input at byte 3", 3},
      {"+1", "unexpected character '+' at byte 0", 0},
      {".5", "unexpected character '.' at byte 0", 0},
      {"NaN", "unexpected character 'N' at byte 0", 0},
      {"'a'", "unexpected character ''' at byte 0", 0},
      {"/* comment */ 1", "unexpected character '/' at byte 0", 0},
      {"[1,\x01]", "unexpected byte 0x01 at byte 3", 3},
  };
  for (const Case& c : cases) {
    INFO(c.text);
    const JsonParseError error = parse_error(c.text);
    CHECK(std::string(error.what()) == c.message);
    CHECK(error.offset() == c.offset);
  }
}

TEST_CASE("json: trailing garbage and NUL bytes are rejected", "[json]") {
  CHECK_THROWS_WITH(parse_json("{} x"), "unexpected character 'x' after the end of the document at byte 3");
  CHECK_THROWS_WITH(parse_json("1 2"), "unexpected character '2' after the end of the document at byte 2");
  CHECK_THROWS_WITH(parse_json("1 23"), "unexpected character '2' after the end of the document at byte 2");
  CHECK_THROWS_WITH(parse_json("[1]]"), Contains("at byte 3"));
  CHECK_THROWS_WITH(parse_json("\"a\\\"b\" \"c\""), Contains("after the end of the document at byte 7"));
  // nlohmann stops at a NUL byte as if the input ended there: we do not.
  CHECK_THROWS_WITH(parse_json(std::string("{}\0", 3)),
                    "unexpected byte 0x00 after the end of the document at byte 2");
  CHECK_THROWS_WITH(parse_json(std::string("{} \0\0", 5)),
                    "unexpected byte 0x00 after the end of the document at byte 3");
  CHECK_THROWS_WITH(parse_json(std::string("[1,\0]", 5)), "unexpected byte 0x00 at byte 3");
  CHECK_THROWS_WITH(parse_json(std::string("tru\0", 4)), "unexpected byte 0x00 at byte 3");
  CHECK_THROWS_WITH(parse_json(std::string("[x\0]", 4)), "unexpected character 'x' at byte 1");
  CHECK_NOTHROW(parse_json("{}  \n\t\r "));
}

TEST_CASE("json: duplicate keys are rejected at any depth", "[json]") {
  CHECK_THROWS_WITH(parse_json(R"({"x":1,"x":2})"), "duplicate key \"x\" at byte 7");
  CHECK_THROWS_AS(parse_json(R"({"x":1,"x":2})"), JsonDuplicateKeyError);
  try {
    parse_json(R"({"outer":[{"a":1,"b":2,"a":3}]})");
    FAIL("expected a duplicate key error");
  } catch (const JsonDuplicateKeyError& e) {
    CHECK(e.key() == "a");
    CHECK(e.depth() == 3);  // object, array, object
    CHECK(e.offset() == 23);
    CHECK_THAT(e.what(), Contains("duplicate key \"a\""));
  }
  // The offset is the key's opening quote, escaped quotes in the key notwithstanding.
  CHECK_THROWS_WITH(parse_json(R"({"q\"\\":1, "q\"\\" :2})"), "duplicate key \"q\"\\\" at byte 12");
  // Keys equal after unescaping are the same key.
  CHECK_THROWS_AS(parse_json(R"({"a":1,"\u0061":2})"), JsonDuplicateKeyError);
  CHECK_NOTHROW(parse_json(R"({"a":{"a":1},"b":{"a":2}})"));
  CHECK_NOTHROW(parse_json(R"([{"a":1},{"a":2}])"));
}

TEST_CASE("json: objects with many members parse in linear time", "[json]") {
  // ordered_json's own insertion searches for each key; a hostile header must not make that
  // quadratic (200,000 names would take minutes).
  std::string text = "{";
  for (int i = 0; i < 200000; ++i) text += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":" + std::to_string(i);
  text += "}";
  const auto started = std::chrono::steady_clock::now();
  const Json value = parse_json(text);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  CHECK(value.size() == 200000);
  CHECK(value.begin().key() == "k0");
  CHECK(value.at("k199999").get<int64_t>() == 199999);
  CHECK(seconds < 10.0);
}

TEST_CASE("json: nesting depth is limited", "[json]") {
  const int limit = maskgit::kJsonMaxDepth;
  const std::string at_limit = std::string(limit, '[') + std::string(limit, ']');
  CHECK_NOTHROW(parse_json(at_limit));
  const std::string too_deep = std::string(limit + 1, '[') + std::string(limit + 1, ']');
  CHECK_THROWS_WITH(parse_json(too_deep), "nesting deeper than 256 levels at byte " + std::to_string(limit));
  std::string mixed;
  for (int i = 0; i <= limit; ++i) mixed += i % 2 ? "[" : "{\"k\": ";
  CHECK_THROWS_WITH(parse_json(mixed), Contains("nesting deeper than") && Contains("at byte " + std::to_string(6 * 128 + 128)));
  // A hostile document far beyond the limit fails cleanly instead of overflowing the stack.
  std::string hostile;
  for (int i = 0; i < 100000; ++i) hostile += "{\"a\":";
  CHECK_THROWS_AS(parse_json(hostile), JsonParseError);
}

TEST_CASE("json: typed lookups report the dotted path", "[json]") {
  const Json root = parse_json(
      R"({"tokenizer":{"codebook_size":1024,"eps":1e-5,"half":0.5,"flag":true,"name":"vq",)"
      R"("mults":[1,2,4],"bad_mults":[1,2.5],"text_size":"big","huge":9223372036854775808}})");
  const Json& tokenizer = root.at("tokenizer");
  CHECK(maskgit::json_int(tokenizer, "codebook_size", "tokenizer") == 1024);
  CHECK(maskgit::json_double(tokenizer, "eps", "tokenizer") == 1e-5);
  CHECK(maskgit::json_double(tokenizer, "codebook_size", "tokenizer") == 1024.0);
  CHECK(maskgit::json_bool(tokenizer, "flag", "tokenizer"));
  CHECK(maskgit::json_string(tokenizer, "name", "tokenizer") == "vq");
  CHECK(maskgit::json_int_list(tokenizer, "mults", "tokenizer") == std::vector<int64_t>{1, 2, 4});

  CHECK_THROWS_WITH(maskgit::json_int(tokenizer, "missing_key", "tokenizer"),
                    "tokenizer.missing_key: missing");
  CHECK_THROWS_WITH(maskgit::json_int(tokenizer, "text_size", "tokenizer"),
                    "tokenizer.text_size: expected an integer, got a string");
  CHECK_THROWS_WITH(maskgit::json_int(tokenizer, "half", "tokenizer"),
                    "tokenizer.half: expected an integer, got 0.5");
  CHECK_THROWS_WITH(maskgit::json_int(tokenizer, "huge", "tokenizer"),
                    "tokenizer.huge: expected an integer, got 9223372036854775808 (more than 2^63-1)");
  CHECK_THROWS_WITH(maskgit::json_double(tokenizer, "name", "tokenizer"),
                    StartsWith("tokenizer.name: expected a number"));
  CHECK_THROWS_WITH(maskgit::json_bool(tokenizer, "codebook_size", "tokenizer"),
                    StartsWith("tokenizer.codebook_size: expected a boolean"));
  CHECK_THROWS_WITH(maskgit::json_string(tokenizer, "flag", "tokenizer"),
                    StartsWith("tokenizer.flag: expected a string"));
  CHECK_THROWS_WITH(maskgit::json_int_list(tokenizer, "name", "tokenizer"),
                    StartsWith("tokenizer.name: expected a list of integers"));
  CHECK_THROWS_WITH(maskgit::json_int_list(tokenizer, "bad_mults", "tokenizer"),
                    "tokenizer.bad_mults[1]: expected an integer, got 2.5");
  // An empty path means top level: the key alone names the value.
  CHECK_THROWS_WITH(maskgit::json_int(root, "format_version", ""), "format_version: missing");
  CHECK_THROWS_WITH(maskgit::json_int(Json(3), "x", "image"), StartsWith("image: expected an object"));
  CHECK_THROWS_WITH(maskgit::json_int(Json(3), "x", ""), StartsWith("top level: expected an object"));
  CHECK(std::string(maskgit::json_type_name(Json::array())) == "an array");
  CHECK(std::string(maskgit::json_type_name(Json(1u))) == "a number");
}

TEST_CASE("is_valid_utf8: RFC 3629 well-formedness") {
  using maskgit::is_valid_utf8;
  CHECK(is_valid_utf8(""));
  CHECK(is_valid_utf8("plain ascii"));
  CHECK(is_valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));  // é € 😀
  CHECK(is_valid_utf8("\xf4\x8f\xbf\xbf"));                          // U+10FFFF
  CHECK_FALSE(is_valid_utf8("\xff\xfe"));                            // not a lead byte
  CHECK_FALSE(is_valid_utf8("\xc3"));                                // truncated
  CHECK_FALSE(is_valid_utf8("\xc3\x28"));                            // bad continuation
  CHECK_FALSE(is_valid_utf8("\xc0\xaf"));                            // overlong '/'
  CHECK_FALSE(is_valid_utf8("\xe0\x80\xaf"));                        // overlong, 3 bytes
  CHECK_FALSE(is_valid_utf8("\xed\xa0\x80"));                        // a surrogate
  CHECK_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));                    // above U+10FFFF
}
