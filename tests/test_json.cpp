#include <catch2/catch.hpp>

#include <limits>
#include <string>

#include "io/json.h"

using maskgit::Json;
using maskgit::JsonDuplicateKeyError;
using maskgit::JsonParseError;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

// The parse error for `text`, or an empty message with offset max when it parses.
JsonParseError parse_error(const std::string& text) {
  try {
    Json::parse(text);
  } catch (const JsonParseError& e) {
    return e;
  }
  return JsonParseError("", std::numeric_limits<size_t>::max());
}

}  // namespace

TEST_CASE("json: scalars parse to the right types", "[json]") {
  CHECK(Json::parse("null").is_null());
  CHECK(Json::parse("true").as_bool() == true);
  CHECK(Json::parse("false").as_bool() == false);
  CHECK(Json::parse("\"hi\"").as_string() == "hi");
  CHECK(Json::parse("  \n\t 42 \r\n").as_int() == 42);
}

TEST_CASE("json: integers and doubles are told apart", "[json]") {
  const Json integer = Json::parse("-17");
  CHECK(integer.is_integer());
  CHECK(integer.as_int() == -17);
  CHECK(integer.as_double() == -17.0);

  for (const char* text : {"1.0", "1e3", "1E-3", "-0.5", "2.5e+10"}) {
    INFO(text);
    const Json value = Json::parse(text);
    CHECK(value.is_number());
    CHECK_FALSE(value.is_integer());
    CHECK_THROWS_WITH(value.as_int(), Contains("expected an integer"));
  }
  CHECK(Json::parse("1e3").as_double() == 1000.0);

  CHECK(Json::parse("9223372036854775807").as_int() == std::numeric_limits<int64_t>::max());
  CHECK(Json::parse("-9223372036854775808").as_int() == std::numeric_limits<int64_t>::min());
  // Past int64: still a number, but only as a double.
  const Json big = Json::parse("9223372036854775808");
  CHECK_FALSE(big.is_integer());
  CHECK(big.as_double() == 9223372036854775808.0);
  CHECK_FALSE(Json::parse("18446744073709551616").is_integer());

  CHECK(Json(uint64_t{5}).is_integer());
  CHECK_FALSE(Json(std::numeric_limits<uint64_t>::max()).is_integer());
  CHECK_FALSE(Json(3.0).is_integer());
}

TEST_CASE("json: extreme exponents", "[json]") {
  CHECK(Json::parse("1e-400").as_double() == 0.0);
  CHECK(Json::parse("0.0000000000000000000000000000001e-300").as_double() == 0.0);
  CHECK_THROWS_WITH(Json::parse("1e400"), Contains("too large") && Contains("at byte 0"));
  CHECK_THROWS_AS(Json::parse("[-1e400]"), JsonParseError);
}

TEST_CASE("json: string escapes and unicode", "[json]") {
  CHECK(Json::parse(R"("a\"b\\c\/d\b\f\n\r\t")").as_string() == "a\"b\\c/d\b\f\n\r\t");
  CHECK(Json::parse(R"("\u0041\u00e9\u20ac")").as_string() == "A\xc3\xa9\xe2\x82\xac");
  // A surrogate pair becomes one four-byte UTF-8 sequence (U+1F600).
  CHECK(Json::parse(R"("\ud83d\ude00")").as_string() == "\xf0\x9f\x98\x80");
  CHECK(Json::parse(R"("\uD83D\uDE00")").as_string() == "\xf0\x9f\x98\x80");
  // Raw UTF-8 passes through untouched.
  CHECK(Json::parse("\"caf\xc3\xa9\"").as_string() == "caf\xc3\xa9");
  CHECK(Json::parse(R"("\u0000")").as_string() == std::string(1, '\0'));

  CHECK_THROWS_WITH(Json::parse(R"("\ude00")"), Contains("unpaired low surrogate"));
  CHECK_THROWS_WITH(Json::parse(R"("\ud83d")"), Contains("not followed by a low surrogate"));
  CHECK_THROWS_WITH(Json::parse(R"("\ud83dx")"), Contains("not followed by a low surrogate"));
  CHECK_THROWS_WITH(Json::parse(R"("\ud83d\u0041")"), Contains("not a low surrogate"));
  CHECK_THROWS_WITH(Json::parse(R"("\u12g4")"), Contains("invalid hex digit"));
  CHECK_THROWS_WITH(Json::parse(R"("\q")"), Contains("invalid escape") && Contains("at byte 1"));
  CHECK_THROWS_WITH(Json::parse("\"a\nb\""), Contains("control character 0x0a in string at byte 2"));
  CHECK_THROWS_WITH(Json::parse("\"a\tb\""), Contains("control character 0x09"));
  CHECK_THROWS_WITH(Json::parse("\"abc"), Contains("unterminated string at byte 0"));
}

TEST_CASE("json: dump escapes strings so they parse back", "[json]") {
  const std::string nasty = std::string("quote\" backslash\\ newline\n tab\t bell\x07 nul") +
                            std::string(1, '\0') + " \xe2\x82\xac";
  const std::string text = Json(nasty).dump();
  CHECK(text.find('\n') == std::string::npos);
  CHECK_THAT(text, Contains("\\u0007") && Contains("\\u0000") && Contains("\\\"") &&
                       Contains("\\\\") && Contains("\\n"));
  CHECK(Json::parse(text).as_string() == nasty);
}

TEST_CASE("json: numbers dump as integers or round-tripping doubles", "[json]") {
  CHECK(Json(42).dump() == "42");
  CHECK(Json(int64_t{-9007199254740993}).dump() == "-9007199254740993");
  CHECK(Json(std::numeric_limits<int64_t>::min()).dump() == "-9223372036854775808");
  CHECK(Json(1.0).dump() == "1.0");
  CHECK(Json(0.5).dump() == "0.5");
  CHECK(Json(std::numeric_limits<double>::quiet_NaN()).dump() == "null");
  CHECK(Json(std::numeric_limits<double>::infinity()).dump() == "null");
  CHECK(Json(-std::numeric_limits<double>::infinity()).dump() == "null");

  for (const double value : {0.1, 1.0 / 3.0, 1e-7, 6.02214076e23, 1e300, -2.5e-308,
                             std::numeric_limits<double>::max(),
                             std::numeric_limits<double>::denorm_min(), 123456789.0}) {
    INFO(value);
    const Json back = Json::parse(Json(value).dump());
    CHECK_FALSE(back.is_integer());
    CHECK(back.as_double() == value);
  }
}

TEST_CASE("json: documents round-trip through dump and parse", "[json]") {
  Json document = Json::object();
  document.set("name", "maskgit");
  document.set("size", 256);
  document.set("eps", 1e-6);
  document.set("flag", true);
  document.set("nothing", nullptr);
  Json list = Json::array();
  list.push_back(1);
  list.push_back("two");
  list.push_back(Json::array());
  list.push_back(Json::object());
  document.set("list", list);
  Json nested = Json::object();
  nested.set("deep", Json(Json::Array{Json(1), Json(Json::Object{{"x", Json(2.5)}})}));
  document.set("nested", nested);

  for (const int indent : {-1, 0, 2, 4}) {
    INFO(indent);
    const std::string text = document.dump(indent);
    const Json back = Json::parse(text);
    CHECK(back == document);
    CHECK(back.dump(indent) == text);  // dump is deterministic and keeps key order
  }
  CHECK(document.dump() ==
        R"({"name":"maskgit","size":256,"eps":1e-06,"flag":true,"nothing":null,)"
        R"("list":[1,"two",[],{}],"nested":{"deep":[1,{"x":2.5}]}})");
}

TEST_CASE("json: pretty printing layout", "[json]") {
  Json document = Json::object();
  document.set("a", Json(Json::Array{Json(1), Json(2)}));
  document.set("b", Json::object());
  CHECK(document.dump(2) == "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": {}\n}");
}

TEST_CASE("json: objects keep insertion order and set replaces in place", "[json]") {
  Json object = Json::parse(R"({"z":1,"a":2,"m":3})");
  CHECK(object.dump() == R"({"z":1,"a":2,"m":3})");
  object.set("a", "changed");
  CHECK(object.dump() == R"({"z":1,"a":"changed","m":3})");
  CHECK(object.size() == 3);
  CHECK(object.contains("m"));
  CHECK_FALSE(object.contains("q"));
  CHECK(object.find("q") == nullptr);
  CHECK_THROWS_WITH(object.at("q"), Contains("q") && Contains("missing"));
  CHECK(Json::parse(R"({"a":1,"b":2})") == Json::parse(R"({"b":2,"a":1})"));
  CHECK(Json::parse("[1,2]") != Json::parse("[2,1]"));
  CHECK(Json::parse("1") == Json::parse("1.0"));
}

TEST_CASE("json: accessors name the expected type", "[json]") {
  const Json text("x");
  CHECK_THROWS_WITH(text.as_int(), Contains("expected an integer"));
  CHECK_THROWS_WITH(text.as_bool(), Contains("expected a boolean"));
  CHECK_THROWS_WITH(text.as_array(), Contains("expected an array"));
  CHECK_THROWS_WITH(text.as_object(), Contains("expected an object"));
  CHECK_THROWS_WITH(Json(1).as_string(), Contains("expected a string"));
  CHECK_THROWS_WITH(Json(true).as_double(), Contains("expected a number"));
  CHECK_THROWS(Json(1).size());
  CHECK_THROWS(Json::array().set("k", 1));
  CHECK_THROWS(Json::object().push_back(1));
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
      {"[1,\x01]", "unexpected byte 0x01 at byte 3", 3},
  };
  for (const Case& c : cases) {
    INFO(c.text);
    const JsonParseError error = parse_error(c.text);
    CHECK(std::string(error.what()) == c.message);
    CHECK(error.offset() == c.offset);
  }
}

TEST_CASE("json: trailing garbage is rejected", "[json]") {
  CHECK_THROWS_WITH(Json::parse("{} x"), "unexpected character 'x' after the end of the document at byte 3");
  CHECK_THROWS_WITH(Json::parse("1 2"), Contains("at byte 2"));
  CHECK_THROWS_WITH(Json::parse("[1]]"), Contains("at byte 3"));
  CHECK_THROWS_WITH(Json::parse(std::string("{}\0", 3)), Contains("byte 0x00"));
  CHECK_NOTHROW(Json::parse("{}  \n\t\r "));
}

TEST_CASE("json: duplicate keys are rejected at any depth", "[json]") {
  CHECK_THROWS_WITH(Json::parse(R"({"x":1,"x":2})"), "duplicate key \"x\" at byte 7");
  CHECK_THROWS_AS(Json::parse(R"({"x":1,"x":2})"), JsonDuplicateKeyError);
  try {
    Json::parse(R"({"outer":[{"a":1,"b":2,"a":3}]})");
    FAIL("expected a duplicate key error");
  } catch (const JsonDuplicateKeyError& e) {
    CHECK(e.key() == "a");
    CHECK(e.depth() == 3);  // object, array, object
    CHECK(e.offset() == 23);
    CHECK_THAT(e.what(), Contains("duplicate key \"a\""));
  }
  // Keys equal after unescaping are the same key.
  CHECK_THROWS_AS(Json::parse(R"({"a":1,"\u0061":2})"), JsonDuplicateKeyError);
  CHECK_NOTHROW(Json::parse(R"({"a":{"a":1},"b":{"a":2}})"));
}

TEST_CASE("json: nesting depth is limited", "[json]") {
  const int limit = maskgit::kJsonMaxDepth;
  const std::string at_limit = std::string(limit, '[') + std::string(limit, ']');
  CHECK_NOTHROW(Json::parse(at_limit));
  const std::string too_deep = std::string(limit + 1, '[') + std::string(limit + 1, ']');
  CHECK_THROWS_WITH(Json::parse(too_deep),
                    Contains("nesting deeper than") &&
                        Contains("at byte " + std::to_string(limit)));
  // A hostile document far beyond the limit fails cleanly instead of overflowing the stack.
  std::string hostile;
  for (int i = 0; i < 100000; ++i) hostile += "{\"a\":";
  CHECK_THROWS_AS(Json::parse(hostile), JsonParseError);
}

TEST_CASE("json: typed lookups report the dotted path", "[json]") {
  const Json root = Json::parse(
      R"({"tokenizer":{"codebook_size":1024,"eps":1e-5,"half":0.5,"flag":true,"name":"vq",)"
      R"("mults":[1,2,4],"bad_mults":[1,2.5],"text_size":"big"}})");
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
                    StartsWith("tokenizer.text_size: expected an integer"));
  CHECK_THROWS_WITH(maskgit::json_int(tokenizer, "half", "tokenizer"),
                    StartsWith("tokenizer.half: expected an integer"));
  CHECK_THROWS_WITH(maskgit::json_double(tokenizer, "name", "tokenizer"),
                    StartsWith("tokenizer.name: expected a number"));
  CHECK_THROWS_WITH(maskgit::json_bool(tokenizer, "codebook_size", "tokenizer"),
                    StartsWith("tokenizer.codebook_size: expected a boolean"));
  CHECK_THROWS_WITH(maskgit::json_string(tokenizer, "flag", "tokenizer"),
                    StartsWith("tokenizer.flag: expected a string"));
  CHECK_THROWS_WITH(maskgit::json_int_list(tokenizer, "name", "tokenizer"),
                    StartsWith("tokenizer.name: expected a list of integers"));
  CHECK_THROWS_WITH(maskgit::json_int_list(tokenizer, "bad_mults", "tokenizer"),
                    StartsWith("tokenizer.bad_mults[1]: expected an integer"));
  // An empty path means top level: the key alone names the value.
  CHECK_THROWS_WITH(maskgit::json_int(root, "format_version", ""), "format_version: missing");
  CHECK_THROWS_WITH(maskgit::json_int(Json(3), "x", "image"), StartsWith("image: expected an object"));
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
