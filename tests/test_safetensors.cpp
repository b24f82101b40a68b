#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"

using maskgit::DType;
using maskgit::SafetensorsEntry;
using maskgit::SafetensorsError;
using maskgit::SafetensorsFile;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using Kind = SafetensorsError::Kind;
namespace fs = std::filesystem;

namespace {

std::string length_prefix(uint64_t length) {
  std::string prefix;
  for (int i = 0; i < 8; ++i) prefix += static_cast<char>((length >> (8 * i)) & 0xff);
  return prefix;
}

// A file as a writer would lay it out: length prefix, header text, data bytes.
std::string container(const std::string& header, const std::string& data = "") {
  return length_prefix(header.size()) + header + data;
}

std::string tensor_json(const std::string& dtype, const std::string& shape, uint64_t begin,
                        uint64_t end) {
  return "{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
         std::to_string(begin) + "," + std::to_string(end) + "]}";
}

template <typename T>
std::string raw_bytes(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

SafetensorsEntry make_entry(const std::string& name, DType dtype, std::vector<int64_t> shape,
                            std::string data) {
  SafetensorsEntry entry;
  entry.name = name;
  entry.dtype = dtype;
  entry.shape = std::move(shape);
  entry.data = std::move(data);
  return entry;
}

std::string kind_name(Kind kind) {
  switch (kind) {
    case Kind::truncated: return "truncated";
    case Kind::bad_header_length: return "bad_header_length";
    case Kind::bad_json: return "bad_json";
    case Kind::bad_structure: return "bad_structure";
    case Kind::bad_metadata: return "bad_metadata";
    case Kind::duplicate_name: return "duplicate_name";
    case Kind::bad_dtype: return "bad_dtype";
    case Kind::bad_shape: return "bad_shape";
    case Kind::bad_offsets: return "bad_offsets";
    case Kind::offsets_out_of_range: return "offsets_out_of_range";
    case Kind::size_mismatch: return "size_mismatch";
    case Kind::overlap: return "overlap";
    case Kind::gap: return "gap";
  }
  return "?";
}

// A fresh directory under the system temp dir, removed with everything in it at scope end.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("maskgit-test-safetensors-" + std::to_string(::getpid()) + "-" +
             std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::vector<std::string> names() const {
    std::vector<std::string> result;
    for (const auto& item : fs::directory_iterator(path_)) result.push_back(item.path().filename().string());
    std::sort(result.begin(), result.end());
    return result;
  }

 private:
  fs::path path_;
};

SafetensorsFile sample_file() {
  SafetensorsFile file;
  // Deliberately not in name order: the serializer sorts.
  file.tensors.push_back(make_entry("weight", DType::F32, {2, 3},
                                    raw_bytes(std::vector<float>{1.5f, -2, 3, 4, 5, 6.25f})));
  file.tensors.push_back(make_entry("bias", DType::F64, {2}, raw_bytes(std::vector<double>{0.1, -1e300})));
  file.tensors.push_back(make_entry("step", DType::I64, {}, raw_bytes(std::vector<int64_t>{-123456789012})));
  file.tensors.push_back(make_entry("ids", DType::I32, {3}, raw_bytes(std::vector<int32_t>{7, -8, 9})));
  file.tensors.push_back(make_entry("short", DType::I16, {1}, raw_bytes(std::vector<int16_t>{-300})));
  file.tensors.push_back(make_entry("tiny", DType::I8, {2}, raw_bytes(std::vector<int8_t>{-1, 127})));
  file.tensors.push_back(make_entry("pixels", DType::U8, {1, 3}, std::string("\x00\x80\xff", 3)));
  file.tensors.push_back(make_entry("mask", DType::BOOL, {3}, std::string("\x01\x00\x01", 3)));
  file.tensors.push_back(make_entry("half", DType::F16, {2}, raw_bytes(std::vector<uint16_t>{0x3c00, 0xc000})));
  file.tensors.push_back(make_entry("brain", DType::BF16, {1}, raw_bytes(std::vector<uint16_t>{0x3f80})));
  file.tensors.push_back(make_entry("empty", DType::F32, {0, 4}, ""));
  file.metadata["format"] = "pt";
  file.metadata["config"] = "{\"quoted\": \"value\\n\"}";
  return file;
}

}  // namespace

TEST_CASE("safetensors: dtype names and sizes", "[safetensors]") {
  const std::pair<const char*, size_t> expected[] = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},
      {"I32", 4}, {"I16", 2}, {"I8", 1},  {"U8", 1},   {"BOOL", 1}};
  for (const auto& [name, size] : expected) {
    DType dtype = DType::F32;
    REQUIRE(maskgit::parse_dtype(name, &dtype));
    CHECK(std::string(maskgit::dtype_name(dtype)) == name);
    CHECK(maskgit::dtype_size(dtype) == size);
  }
  DType unused = DType::F32;
  CHECK_FALSE(maskgit::parse_dtype("f32", &unused));
  CHECK_FALSE(maskgit::parse_dtype("F8_E4M3", &unused));
}

TEST_CASE("safetensors: round trip keeps every dtype, metadata and zero-size tensors",
          "[safetensors]") {
  const SafetensorsFile original = sample_file();
  const std::string bytes = maskgit::serialize_safetensors(original);

  uint64_t header_size = 0;
  for (int i = 0; i < 8; ++i) header_size |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  CHECK(header_size % 8 == 0);  // the data section starts 8-byte aligned
  const std::string header = bytes.substr(8, header_size);
  CHECK_THAT(header, StartsWith("{\"__metadata__\":{\"config\":"));

  const SafetensorsFile parsed = maskgit::parse_safetensors(bytes, "memory");
  CHECK(parsed.metadata == original.metadata);
  REQUIRE(parsed.tensors.size() == original.tensors.size());
  for (const SafetensorsEntry& expected : original.tensors) {
    INFO(expected.name);
    const SafetensorsEntry* actual = parsed.find(expected.name);
    REQUIRE(actual != nullptr);
    CHECK(actual->dtype == expected.dtype);
    CHECK(actual->shape == expected.shape);
    CHECK(actual->data == expected.data);
  }
  CHECK(parsed.find("absent") == nullptr);

  // Serialising what was read gives the same bytes: the layout is canonical.
  CHECK(maskgit::serialize_safetensors(parsed) == bytes);
}

TEST_CASE("safetensors: serialized layout matches the reference format", "[safetensors]") {
  SafetensorsFile file;
  file.tensors.push_back(make_entry("b", DType::F32, {2}, raw_bytes(std::vector<float>{1, 2})));
  file.tensors.push_back(make_entry("a", DType::U8, {1}, "\x07"));
  const std::string header =
      R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}})";
  const std::string padded = header + std::string((8 - header.size() % 8) % 8, ' ');
  CHECK(maskgit::serialize_safetensors(file) ==
        container(padded, "\x07" + raw_bytes(std::vector<float>{1, 2})));

  // No metadata key at all when there is none; an empty file is just an empty object.
  CHECK(maskgit::serialize_safetensors(SafetensorsFile{}) == container("{}      "));
  CHECK(maskgit::parse_safetensors(container("{}      "), "empty").tensors.empty());
}

TEST_CASE("safetensors: reader accepts valid variations", "[safetensors]") {
  SECTION("tensors come back in data-offset order, not header order") {
    const std::string header = "{\"second\":" + tensor_json("U8", "[2]", 1, 3) +
                               ",\"first\":" + tensor_json("U8", "[1]", 0, 1) + "}";
    const SafetensorsFile file = maskgit::parse_safetensors(container(header, "abc"), "x");
    REQUIRE(file.tensors.size() == 2);
    CHECK(file.tensors[0].name == "first");
    CHECK(file.tensors[0].data == "a");
    CHECK(file.tensors[1].name == "second");
    CHECK(file.tensors[1].data == "bc");
  }
  SECTION("zero-size tensors may sit at any tensor boundary") {
    const std::string header = "{\"z_start\":" + tensor_json("F32", "[0]", 0, 0) +
                               ",\"a\":" + tensor_json("U8", "[2]", 0, 2) +
                               ",\"z_mid\":" + tensor_json("I64", "[3, 0]", 2, 2) +
                               ",\"b\":" + tensor_json("U8", "[1]", 2, 3) +
                               ",\"z_end\":" + tensor_json("BOOL", "[0]", 3, 3) + "}";
    const SafetensorsFile file = maskgit::parse_safetensors(container(header, "xyz"), "x");
    REQUIRE(file.tensors.size() == 5);
    CHECK(file.find("z_mid")->shape == std::vector<int64_t>{3, 0});
    CHECK(file.find("z_mid")->data.empty());
    CHECK(file.find("b")->data == "z");
  }
  SECTION("whitespace around and inside the header") {
    const std::string header = " \n{ \"t\" : " + tensor_json("U8", "[ 1 ]", 0, 1) + " }\t   ";
    CHECK(maskgit::parse_safetensors(container(header, "q"), "x").find("t")->data == "q");
  }
  SECTION("a scalar has an empty shape and one element") {
    const std::string header = "{\"s\":" + tensor_json("I16", "[]", 0, 2) + "}";
    CHECK(maskgit::parse_safetensors(container(header, "ab"), "x").find("s")->shape.empty());
  }
}

TEST_CASE("safetensors: corrupt files are rejected with their own kind and message",
          "[safetensors]") {
  struct Case {
    const char* description;
    std::string bytes;
    Kind kind;
    std::string message;  // must appear in what()
  };
  const std::string u8_entry = tensor_json("U8", "[4]", 0, 4);
  const std::vector<Case> cases = {
      {"empty file", "", Kind::truncated, "file is 0 bytes"},
      {"shorter than the prefix", "abc", Kind::truncated, "file is 3 bytes, shorter than the 8-byte"},
      {"header length zero", length_prefix(0) + "data", Kind::bad_header_length, "header length is 0"},
      {"header length beyond the file", length_prefix(100) + "{}", Kind::bad_header_length,
       "header length 100 exceeds the 2 bytes after the length prefix"},
      {"absurd header length", length_prefix(uint64_t{1} << 40) + "{}", Kind::bad_header_length,
       "header length 1099511627776 exceeds the limit"},
      {"maximum header length", length_prefix(~uint64_t{0}), Kind::bad_header_length,
       "header length 18446744073709551615"},
      {"JSON syntax", container("{\"a\": }"), Kind::bad_json,
       "header is not valid JSON: unexpected character '}' at byte 6 of the header"},
      {"JSON cut short", container("{\"a\": {\"dtype\""), Kind::bad_json, "unexpected end of input at byte 14"},
      {"garbage after the header object", container("{} {}"), Kind::bad_json, "at byte 3"},
      {"NUL padding", container(std::string("{}\0\0", 4)), Kind::bad_json, "byte 0x00 after the end"},
      {"header is an array", container("[]"), Kind::bad_structure, "header is not a JSON object but an array"},
      {"entry is not an object", container("{\"a\": [1]}"), Kind::bad_structure,
       "tensor \"a\": entry is not an object"},
      {"missing dtype", container("{\"a\":{\"shape\":[],\"data_offsets\":[0,0]}}"), Kind::bad_structure,
       "tensor \"a\": missing \"dtype\""},
      {"missing shape", container("{\"a\":{\"dtype\":\"U8\",\"data_offsets\":[0,0]}}"), Kind::bad_structure,
       "tensor \"a\": missing \"shape\""},
      {"missing data_offsets", container("{\"a\":{\"dtype\":\"U8\",\"shape\":[0]}}"), Kind::bad_structure,
       "tensor \"a\": missing \"data_offsets\""},
      {"unexpected field", container("{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0],\"x\":1}}"),
       Kind::bad_structure, "tensor \"a\": unexpected field \"x\""},
      {"duplicate field in an entry",
       container("{\"a\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}"),
       Kind::bad_structure, "duplicate key \"dtype\""},
      {"metadata not an object", container("{\"__metadata__\": \"x\"}"), Kind::bad_metadata,
       "\"__metadata__\" is not an object"},
      {"metadata value not a string", container("{\"__metadata__\": {\"step\": 5}}"), Kind::bad_metadata,
       "\"__metadata__\" value for \"step\" is not a string"},
      {"metadata twice", container("{\"__metadata__\":{},\"__metadata__\":{}}"), Kind::bad_metadata,
       "\"__metadata__\" appears twice"},
      {"duplicate tensor name",
       container("{\"w\":" + u8_entry + ",\"w\":" + u8_entry + "}", "abcd"), Kind::duplicate_name,
       "tensor \"w\" appears twice in the header (byte 53)"},
      {"unknown dtype", container("{\"a\":" + tensor_json("F8", "[4]", 0, 4) + "}", "abcd"),
       Kind::bad_dtype, "tensor \"a\": unsupported dtype \"F8\""},
      {"dtype not a string", container("{\"a\":{\"dtype\":4,\"shape\":[4],\"data_offsets\":[0,4]}}", "abcd"),
       Kind::bad_dtype, "tensor \"a\": dtype is not a string: 4"},
      {"negative dimension", container("{\"a\":" + tensor_json("U8", "[-4]", 0, 4) + "}", "abcd"),
       Kind::bad_shape, "tensor \"a\": shape [-4] is not a list of non-negative integers"},
      {"fractional dimension", container("{\"a\":" + tensor_json("U8", "[4.0]", 0, 4) + "}", "abcd"),
       Kind::bad_shape, "shape [4.0]"},
      {"shape not a list", container("{\"a\":" + tensor_json("U8", "4", 0, 4) + "}", "abcd"),
       Kind::bad_shape, "tensor \"a\": shape is not a list: 4"},
      {"offsets reversed", container("{\"a\":" + tensor_json("U8", "[4]", 4, 0) + "}", "abcd"),
       Kind::bad_offsets, "tensor \"a\": data_offsets [4, 0] has begin > end"},
      {"one offset", container("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4]}}", "abcd"),
       Kind::bad_offsets, "data_offsets [4] is not [begin, end]"},
      {"negative offset", container("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[-1,3]}}", "abcd"),
       Kind::bad_offsets, "data_offsets [-1,3]"},
      {"offset beyond int64",
       container("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,18446744073709551616]}}", "abcd"),
       Kind::bad_offsets, "tensor \"a\": data_offsets"},
      {"offsets not a list", container("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":\"0-4\"}}", "abcd"),
       Kind::bad_offsets, "data_offsets \"0-4\""},
      {"end beyond the data", container("{\"a\":" + tensor_json("U8", "[8]", 0, 8) + "}", "abcd"),
       Kind::offsets_out_of_range, "tensor \"a\": data_offsets end 8 is beyond the data section of 4 bytes"},
      {"size does not match shape", container("{\"a\":" + tensor_json("F32", "[2]", 0, 4) + "}", "abcd"),
       Kind::size_mismatch, "tensor \"a\": shape [2] of F32 needs 8 bytes, data_offsets [0, 4] cover 4"},
      {"element count overflows",
       container("{\"a\":" + tensor_json("F64", "[4294967296, 4294967296]", 0, 0) + "}"),
       Kind::size_mismatch, "too large"},
      {"overlapping tensors",
       container("{\"a\":" + tensor_json("U8", "[3]", 0, 3) + ",\"b\":" + tensor_json("U8", "[2]", 2, 4) + "}",
                 "abcd"),
       Kind::overlap, "tensors \"a\" [0, 3] and \"b\" [2, 4] overlap"},
      {"same range twice",
       container("{\"a\":" + u8_entry + ",\"b\":" + u8_entry + "}", "abcd"), Kind::overlap,
       "tensors \"a\" [0, 4] and \"b\" [0, 4] overlap"},
      {"zero-size tensor inside another",
       container("{\"a\":" + u8_entry + ",\"z\":" + tensor_json("U8", "[0]", 2, 2) + "}", "abcd"),
       Kind::overlap, "\"z\" [2, 2]"},
      {"gap between tensors",
       container("{\"a\":" + tensor_json("U8", "[1]", 0, 1) + ",\"b\":" + tensor_json("U8", "[2]", 2, 4) + "}",
                 "abcd"),
       Kind::gap, "data bytes [1, 2) between tensors \"a\" and \"b\""},
      {"gap before the first tensor",
       container("{\"a\":" + tensor_json("U8", "[2]", 2, 4) + "}", "abcd"), Kind::gap,
       "data bytes [0, 2) before the first tensor \"a\""},
      {"trailing data", container("{\"a\":" + tensor_json("U8", "[2]", 0, 2) + "}", "abcd"), Kind::gap,
       "data bytes [2, 4) after the last tensor"},
      {"data but no tensors", container("{}", "abcd"), Kind::gap, "data bytes [0, 4) after the last tensor"},
      // Lengths at the file's very end: a reader that takes the header from the file checks the
      // same bounds against the file's size as the whole-file parser does against its bytes.
      {"seven bytes", length_prefix(2).substr(0, 7), Kind::truncated, "file is 7 bytes"},
      {"only the prefix", length_prefix(2), Kind::bad_header_length,
       "header length 2 exceeds the 0 bytes after the length prefix (file is 8 bytes)"},
      {"header length one past the file", length_prefix(3) + "{}", Kind::bad_header_length,
       "header length 3 exceeds the 2 bytes after the length prefix"},
      {"tensors but no data section", container("{\"a\":" + u8_entry + "}"), Kind::offsets_out_of_range,
       "data_offsets end 4 is beyond the data section of 0 bytes"},
      {"end at 2^63", container("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,9223372036854775807]}}",
                                "abcd"),
       Kind::offsets_out_of_range, "data_offsets end 9223372036854775807"},
      {"zero-size tensor past the end",
       container("{\"a\":" + u8_entry + ",\"z\":" + tensor_json("U8", "[0]", 5, 5) + "}", "abcd"),
       Kind::offsets_out_of_range, "tensor \"z\": data_offsets end 5"},
      {"metadata value an object", container("{\"__metadata__\":{\"a\":{}},\"t\":" + u8_entry + "}", "abcd"),
       Kind::bad_metadata, "\"__metadata__\" value for \"a\" is not a string"},
      {"duplicate tensor name after metadata",
       container("{\"__metadata__\":{},\"w\":" + u8_entry + ",\"w\":" + u8_entry + "}", "abcd"),
       Kind::duplicate_name, "tensor \"w\" appears twice"},
      {"element count overflows in the last dimension",
       container("{\"a\":" + tensor_json("U8", "[3, 9223372036854775807]", 0, 0) + "}"), Kind::size_mismatch,
       "too large"},
  };

  TempDir dir;
  const std::string path = dir.file("bad.safetensors");
  for (const Case& c : cases) {
    INFO(c.description);
    std::string from_bytes;
    try {
      maskgit::parse_safetensors(c.bytes, "bad.safetensors");
      FAIL_CHECK("parsed without error");
    } catch (const SafetensorsError& e) {
      CHECK(kind_name(e.kind()) == kind_name(c.kind));
      CHECK_THAT(e.what(), StartsWith("bad.safetensors: ") && Contains(c.message));
      from_bytes = std::string(e.what()).substr(std::string("bad.safetensors").size());
    }
    // The same file read from disk (header only, then offsets): the same kind and message, with
    // the path in front, from read_safetensors and from SafetensorsReader alike.
    maskgit::write_file_atomic(path, c.bytes);
    for (const bool whole : {true, false}) {
      try {
        if (whole) maskgit::read_safetensors(path);
        else maskgit::SafetensorsReader reader(path);
        FAIL_CHECK("read from the file without error");
      } catch (const SafetensorsError& e) {
        CHECK(kind_name(e.kind()) == kind_name(c.kind));
        CHECK(std::string(e.what()) == path + from_bytes);
      }
    }
  }

  // Every kind is exercised by at least one case above.
  for (int kind = static_cast<int>(Kind::truncated); kind <= static_cast<int>(Kind::gap); ++kind) {
    INFO(kind_name(static_cast<Kind>(kind)));
    CHECK(std::any_of(cases.begin(), cases.end(),
                      [&](const Case& c) { return static_cast<int>(c.kind) == kind; }));
  }
}

TEST_CASE("safetensors: serializer refuses inconsistent entries", "[safetensors]") {
  SafetensorsFile wrong_size;
  wrong_size.tensors.push_back(make_entry("w", DType::F32, {3}, std::string(8, '\0')));
  CHECK_THROWS_MATCHES(maskgit::serialize_safetensors(wrong_size), std::invalid_argument,
                       Catch::Matchers::Message(
                           "safetensors: tensor \"w\" has 8 data bytes, shape [3] of F32 needs 12"));

  SafetensorsFile duplicate;
  duplicate.tensors.push_back(make_entry("w", DType::U8, {1}, "a"));
  duplicate.tensors.push_back(make_entry("w", DType::U8, {1}, "b"));
  CHECK_THROWS_AS(maskgit::serialize_safetensors(duplicate), std::invalid_argument);

  SafetensorsFile negative;
  negative.tensors.push_back(make_entry("w", DType::U8, {-1}, ""));
  CHECK_THROWS_AS(maskgit::serialize_safetensors(negative), std::invalid_argument);

  SafetensorsFile reserved;
  reserved.tensors.push_back(make_entry("__metadata__", DType::U8, {1}, "a"));
  CHECK_THROWS_AS(maskgit::serialize_safetensors(reserved), std::invalid_argument);
}

TEST_CASE("safetensors: files on disk", "[safetensors]") {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");

  SECTION("write then read; no temporary file is left behind") {
    const SafetensorsFile original = sample_file();
    maskgit::write_safetensors(path, original);
    CHECK(dir.names() == std::vector<std::string>{"model.safetensors"});
    CHECK(maskgit::read_file_bytes(path) == maskgit::serialize_safetensors(original));
    const SafetensorsFile back = maskgit::read_safetensors(path);
    CHECK(back.metadata == original.metadata);
    CHECK(back.tensors.size() == original.tensors.size());

    // Overwriting replaces the whole file, also when the new one is shorter.
    SafetensorsFile smaller;
    smaller.tensors.push_back(make_entry("only", DType::U8, {1}, "x"));
    maskgit::write_safetensors(path, smaller);
    CHECK(dir.names() == std::vector<std::string>{"model.safetensors"});
    const SafetensorsFile replaced = maskgit::read_safetensors(path);
    REQUIRE(replaced.tensors.size() == 1);
    CHECK(replaced.tensors[0].data == "x");
  }

  SECTION("a missing file is bad input naming the path") {
    try {
      maskgit::read_safetensors(path);
      FAIL("expected an error");
    } catch (const maskgit::Error& e) {
      CHECK(e.code() == maskgit::ExitCode::bad_input);
      CHECK_THAT(e.what(), StartsWith(path + ": cannot open: ") && Contains("No such file"));
    }
  }

  SECTION("a directory is bad input") {
    try {
      maskgit::read_file_bytes(dir.file(""));
      FAIL("expected an error");
    } catch (const maskgit::Error& e) {
      CHECK(e.code() == maskgit::ExitCode::bad_input);
      CHECK_THAT(e.what(), Contains("is a directory"));
    }
  }

  SECTION("a corrupt file on disk names its path") {
    maskgit::write_file_atomic(path, "abc");
    CHECK_THROWS_MATCHES(maskgit::read_safetensors(path), SafetensorsError,
                         Catch::Matchers::Predicate<SafetensorsError>(
                             [&](const SafetensorsError& e) {
                               return e.kind() == Kind::truncated &&
                                      std::string(e.what()).rfind(path + ": ", 0) == 0;
                             },
                             "is a truncated-file error prefixed with the path"));
  }

  SECTION("an unwritable destination is an io_error and leaves nothing behind") {
    // A parent "folder" that is a regular file cannot be created.
    maskgit::write_file_atomic(dir.file("plain-file"), "x");
    const std::string unreachable = dir.file("plain-file/model.safetensors");
    try {
      maskgit::write_safetensors(unreachable, sample_file());
      FAIL("expected an error");
    } catch (const maskgit::Error& e) {
      CHECK(e.code() == maskgit::ExitCode::io_error);
      CHECK_THAT(e.what(), StartsWith(unreachable + ": "));
    }
    CHECK(dir.names() == std::vector<std::string>{"plain-file"});
  }

  SECTION("a directory is never replaced and no temporary file is left") {
    fs::create_directories(dir.file("occupied/child"));
    try {
      maskgit::write_file_atomic(dir.file("occupied"), "bytes");
      FAIL("expected an error");
    } catch (const maskgit::Error& e) {
      CHECK(e.code() == maskgit::ExitCode::io_error);
      CHECK_THAT(e.what(), StartsWith(dir.file("occupied") + ": is a directory"));
    }
    CHECK(dir.names() == std::vector<std::string>{"occupied"});
  }

  SECTION("ensure_directory and file_exists") {
    const std::string nested = dir.file("a/b/c");
    CHECK_FALSE(maskgit::file_exists(nested));
    maskgit::ensure_directory(nested);
    CHECK(maskgit::file_exists(nested));
    maskgit::ensure_directory(nested);  // already there: fine
    maskgit::ensure_directory("");      // the current directory: nothing to do
    maskgit::write_file_atomic(dir.file("plain"), "x");
    CHECK_THROWS_MATCHES(maskgit::ensure_directory(dir.file("plain")), maskgit::Error,
                         Catch::Matchers::Predicate<maskgit::Error>(
                             [](const maskgit::Error& e) { return e.code() == maskgit::ExitCode::io_error; },
                             "is an io_error"));
  }
}

TEST_CASE("safetensors: the reader takes the header alone, then each tensor from its offset", "[safetensors]") {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  const SafetensorsFile original = sample_file();
  maskgit::write_safetensors(path, original);
  const std::string bytes = maskgit::read_file_bytes(path);

  const maskgit::SafetensorsReader reader(path);
  CHECK(reader.path() == path);
  const maskgit::SafetensorsHeader& header = reader.header();
  CHECK(header.file_size == bytes.size());
  CHECK(header.metadata == original.metadata);
  REQUIRE(header.tensors.size() == original.tensors.size());
  uint64_t previous_end = 0;
  for (const maskgit::SafetensorsTensorInfo& tensor : header.tensors) {
    INFO(tensor.name);
    const SafetensorsEntry* expected = original.find(tensor.name);
    REQUIRE(expected != nullptr);
    CHECK(tensor.dtype == expected->dtype);
    CHECK(tensor.shape == expected->shape);
    CHECK(tensor.size == expected->data.size());
    CHECK(tensor.offset >= previous_end);  // data-offset order
    previous_end = tensor.offset + tensor.size;
    CHECK(bytes.substr(tensor.offset, tensor.size) == expected->data);
    std::string read(tensor.size, '\0');
    reader.read(tensor, read.data());
    CHECK(read == expected->data);
  }
  CHECK(previous_end == bytes.size());
  CHECK(header.find("weight") == &header.tensors[static_cast<size_t>(
                                      std::find_if(header.tensors.begin(), header.tensors.end(),
                                                   [](const auto& t) { return t.name == "weight"; }) -
                                      header.tensors.begin())]);
  CHECK(header.find("absent") == nullptr);

  // The header functions agree with the whole-file parser on the same bytes.
  const uint64_t length = maskgit::parse_safetensors_header_length(bytes, bytes.size(), "x");
  const maskgit::SafetensorsHeader parsed =
      maskgit::parse_safetensors_header(std::string_view(bytes).substr(8, length), bytes.size(), "x");
  CHECK(parsed.tensors.size() == header.tensors.size());
  CHECK(parsed.tensors.front().offset == header.tensors.front().offset);
}

TEST_CASE("safetensors: a file that shrinks after its header was read is refused naming the tensor",
          "[safetensors]") {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  SafetensorsFile file;
  file.tensors.push_back(make_entry("a", DType::U8, {4}, "abcd"));
  file.tensors.push_back(make_entry("b", DType::U8, {4}, "efgh"));
  maskgit::write_safetensors(path, file);
  const maskgit::SafetensorsReader reader(path);
  fs::resize_file(path, fs::file_size(path) - 2);  // the same file, cut in place
  std::string a(4, '\0');
  reader.read(*reader.header().find("a"), a.data());
  CHECK(a == "abcd");
  std::string b(4, '\0');
  try {
    reader.read(*reader.header().find("b"), b.data());
    FAIL("read past the end");
  } catch (const SafetensorsError& e) {
    CHECK(e.kind() == Kind::truncated);
    CHECK_THAT(e.what(), StartsWith(path + ": tensor \"b\": the file ended before its bytes") &&
                             Contains("changed while being read"));
  }
}

TEST_CASE("safetensors: the reader opens regular files only, of bounded size", "[safetensors]") {
  TempDir dir;
  const auto refused = [](const std::string& path, uint64_t max_bytes, const std::string& why) {
    try {
      maskgit::SafetensorsReader reader(path, max_bytes);
      FAIL("opened " << path);
    } catch (const maskgit::Error& e) {
      CHECK(e.code() == maskgit::ExitCode::bad_input);
      CHECK_THAT(e.what(), StartsWith(path + ": ") && Contains(why));
    }
  };
  refused(dir.file("missing"), maskgit::kMaxInputFileBytes, "cannot open: No such file");
  refused(dir.file(""), maskgit::kMaxInputFileBytes, "is a directory");
  refused("/dev/zero", maskgit::kMaxInputFileBytes, "not a regular file");
  REQUIRE(::mkfifo(dir.file("fifo").c_str(), 0600) == 0);
  refused(dir.file("fifo"), maskgit::kMaxInputFileBytes, "not a regular file");  // never waits for a writer
  maskgit::write_safetensors(dir.file("small.safetensors"), sample_file());
  refused(dir.file("small.safetensors"), 64, "more than the 64 accepted");
}

TEST_CASE("safetensors: streamed writing gives the serializer's bytes", "[safetensors]") {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  const SafetensorsFile original = sample_file();
  // Every entry produced in pieces of 1, 2 and 3 bytes, plus one tensor above the 1 MiB chunk.
  SafetensorsFile with_big = original;
  std::string big(3u << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + 1);
  with_big.tensors.push_back(make_entry("big", DType::U8, {static_cast<int64_t>(big.size())}, big));
  std::vector<maskgit::SafetensorsTensorSource> sources;
  for (const SafetensorsEntry& entry : with_big.tensors) {
    maskgit::SafetensorsTensorSource source;
    source.name = entry.name;
    source.dtype = entry.dtype;
    source.shape = entry.shape;
    source.write_data = [&entry](const maskgit::ByteSink& sink) {
      const std::string_view data = entry.data;
      if (data.size() > 1000) {
        sink(data.substr(0, 10));
        sink(data.substr(10));
        return;
      }
      for (size_t at = 0, piece = 1; at < data.size(); at += piece, piece = piece % 3 + 1)
        sink(data.substr(at, piece));
    };
    sources.push_back(std::move(source));
  }
  maskgit::write_safetensors(path, sources, with_big.metadata);
  CHECK(dir.names() == std::vector<std::string>{"model.safetensors"});
  CHECK(maskgit::read_file_bytes(path) == maskgit::serialize_safetensors(with_big));

  // write_safetensors of a whole file streams too: the same bytes.
  maskgit::write_safetensors(dir.file("file.safetensors"), with_big);
  CHECK(maskgit::read_file_bytes(dir.file("file.safetensors")) == maskgit::serialize_safetensors(with_big));
  fs::remove(dir.file("file.safetensors"));

  SECTION("a source that produces the wrong number of bytes replaces nothing") {
    const std::string before = maskgit::read_file_bytes(path);
    for (const std::string& produced : {std::string("abc"), std::string("abcde")}) {
      const std::vector<maskgit::SafetensorsTensorSource> wrong = {
          {"w", DType::U8, {4}, [produced](const maskgit::ByteSink& sink) { sink(produced); }}};
      CHECK_THROWS_MATCHES(maskgit::write_safetensors(path, wrong, {}), std::logic_error,
                           Catch::Matchers::Message("safetensors: tensor \"w\" produced " +
                                                    std::to_string(produced.size()) +
                                                    " bytes, shape [4] of U8 needs 4"));
      CHECK(maskgit::read_file_bytes(path) == before);
      CHECK(dir.names() == std::vector<std::string>{"model.safetensors"});
    }
  }
  SECTION("names and shapes are checked before anything is written") {
    std::vector<maskgit::SafetensorsTensorSource> twice = {{"w", DType::U8, {0}, {}}, {"w", DType::U8, {0}, {}}};
    CHECK_THROWS_AS(maskgit::write_safetensors(dir.file("new.safetensors"), twice, {}), std::invalid_argument);
    twice[1] = {"v", DType::U8, {-1}, {}};
    CHECK_THROWS_AS(maskgit::write_safetensors(dir.file("new.safetensors"), twice, {}), std::invalid_argument);
    CHECK(dir.names() == std::vector<std::string>{"model.safetensors"});
  }
}

TEST_CASE("atomic files: streamed writes", "[atomic_file]") {
  TempDir dir;
  const std::string path = dir.file("out.bin");
  maskgit::write_file_atomic(path, "old");

  SECTION("pieces of every size arrive in order") {
    std::string expected;
    maskgit::write_file_atomic_streamed(path, [&](const maskgit::ByteSink& sink) {
      for (size_t size : {size_t{0}, size_t{1}, size_t{5000}, size_t{1} << 20, size_t{3}, (size_t{1} << 20) + 7}) {
        std::string piece(size, '\0');
        for (size_t i = 0; i < size; ++i) piece[i] = static_cast<char>('a' + (expected.size() + i) % 26);
        expected += piece;
        sink(piece);
      }
    });
    CHECK(maskgit::read_file_bytes(path) == expected);
    CHECK(dir.names() == std::vector<std::string>{"out.bin"});
  }
  SECTION("a producer that throws leaves the destination as it was and no temporary") {
    CHECK_THROWS_WITH(maskgit::write_file_atomic_streamed(path,
                                                          [](const maskgit::ByteSink& sink) {
                                                            sink(std::string(3u << 20, 'x'));
                                                            throw std::runtime_error("producer failed");
                                                          }),
                      "producer failed");
    CHECK(maskgit::read_file_bytes(path) == "old");
    CHECK(dir.names() == std::vector<std::string>{"out.bin"});
  }
  SECTION("a device is written through") {
    maskgit::write_file_atomic_streamed("/dev/null", [](const maskgit::ByteSink& sink) { sink("nothing"); });
  }
  SECTION("a full device fails naming the path") {
    if (!fs::exists("/dev/full")) return;
    try {
      maskgit::write_file_atomic_streamed("/dev/full", [](const maskgit::ByteSink& sink) { sink("x"); });
      FAIL("wrote to /dev/full");
    } catch (const maskgit::Error& e) {
      CHECK(e.code() == maskgit::ExitCode::io_error);
      CHECK_THAT(e.what(), StartsWith("/dev/full: cannot write: "));
    }
  }
}
