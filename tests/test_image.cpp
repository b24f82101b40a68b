#include <torch/torch.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "common/error.h"
#include "io/image.h"
#include "test_support.h"

// LibTorch pulls in glog, whose CHECK(cond) aborts the process; it must be gone before Catch
// defines its own, so everything that includes torch comes first.
#undef CHECK
#include <catch2/catch.hpp>

// The test's own stb_image_write (static, so it cannot clash with the library's copy) makes
// JPEG files, which the library never writes.
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using maskgit::Error;
using maskgit::ExitCode;

namespace {

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            ("maskgit-test-image-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
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

 private:
  fs::path path_;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void spit(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

// Runs `action`, which must throw maskgit::Error with `code`; returns the message.
std::string error_of(const std::function<void()>& action, ExitCode code) {
  try {
    action();
  } catch (const Error& e) {
    CHECK(static_cast<int>(e.code()) == static_cast<int>(code));
    const std::string message = e.what();
    CHECK(message.find('\n') == std::string::npos);
    return message;
  }
  FAIL("expected maskgit::Error");
  return {};
}

// What an 8-bit file can hold of `image`.
torch::Tensor quantized(const torch::Tensor& image) {
  return image.clamp(0, 1).mul(255).round().to(torch::kUInt8).to(torch::kFloat32).div(255);
}

uint32_t be32(const std::string& bytes, size_t offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + offset);
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

void put_be32(std::string& bytes, size_t offset, uint32_t value) {
  for (int i = 0; i < 4; ++i) bytes[offset + static_cast<size_t>(i)] = static_cast<char>(value >> (24 - 8 * i));
}

struct Chunk {
  std::string type;
  bool crc_ok;
};

// An independent walk over a PNG's chunks, checking each CRC.
std::vector<Chunk> png_chunks(const std::string& bytes) {
  std::vector<Chunk> chunks;
  size_t offset = 8;
  while (offset + 12 <= bytes.size()) {
    const uint32_t length = be32(bytes, offset);
    REQUIRE(offset + 12 + length <= bytes.size());
    const auto* typed = reinterpret_cast<const Bytef*>(bytes.data() + offset + 4);
    const uint32_t crc = static_cast<uint32_t>(crc32(0L, typed, length + 4));
    chunks.push_back({bytes.substr(offset + 4, 4), crc == be32(bytes, offset + 8 + length)});
    offset += 12 + length;
  }
  return chunks;
}

std::string write_jpeg(const TempDir& dir, const std::string& name, int width, int height, int channels,
                       const std::vector<unsigned char>& pixels) {
  const std::string path = dir.file(name);
  REQUIRE(stbi_write_jpg(path.c_str(), width, height, channels, pixels.data(), 95) != 0);
  return path;
}

std::string zlib_compress(const std::string& data) {
  uLongf size = compressBound(static_cast<uLong>(data.size()));
  std::string out(size, '\0');
  REQUIRE(compress2(reinterpret_cast<Bytef*>(out.data()), &size, reinterpret_cast<const Bytef*>(data.data()),
                    static_cast<uLong>(data.size()), 9) == Z_OK);
  out.resize(size);
  return out;
}

// One PNG chunk: length, type, data, CRC.
std::string png_chunk(const std::string& type, const std::string& data) {
  std::string out(4, '\0');
  put_be32(out, 0, static_cast<uint32_t>(data.size()));
  const std::string typed = type + data;
  out += typed + std::string(4, '\0');
  put_be32(out, out.size() - 4,
           static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(typed.data()), static_cast<uInt>(typed.size()))));
  return out;
}

// A PNG made by hand, independently of the library: IHDR, the `before` chunks, one IDAT holding
// `rows` (packed samples, filter type 0 added), the `after` chunks, IEND.
std::string handmade_png(uint32_t width, uint32_t height, int bit_depth, int color_type,
                         const std::vector<std::string>& rows, const std::string& before = "",
                         const std::string& after = "") {
  std::string header(13, '\0');
  put_be32(header, 0, width);
  put_be32(header, 4, height);
  header[8] = static_cast<char>(bit_depth);
  header[9] = static_cast<char>(color_type);
  std::string raw;
  for (const std::string& row : rows) raw += '\0' + row;
  return std::string("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", header) + before +
         png_chunk("IDAT", zlib_compress(raw)) + after + png_chunk("IEND", "");
}

// A small grey image with one byte per pixel.
std::string grey_png(const std::string& before = "", const std::string& after = "") {
  return handmade_png(2, 2, 8, 0, {std::string("\x00\x40", 2), std::string("\x80\xff", 2)}, before, after);
}

std::string be16(uint32_t value) {
  return {static_cast<char>(value >> 8), static_cast<char>(value & 0xff)};
}

// Offset of the first chunk of `type` (its length field).
size_t chunk_offset(const std::string& png, const std::string& type) {
  size_t offset = 8;
  while (offset + 12 <= png.size()) {
    if (png.compare(offset + 4, 4, type) == 0) return offset;
    offset += 12 + be32(png, offset);
  }
  FAIL("no " << type << " chunk");
  return 0;
}

}  // namespace

TEST_CASE("PNG round trip is exact to 8-bit quantization", "[image]") {
  TempDir dir;
  torch::manual_seed(1);
  for (const int64_t channels : {1, 3, 4}) {
    DYNAMIC_SECTION("channels " << channels) {
      const torch::Tensor image = torch::rand({channels, 7, 5});
      const std::string path = dir.file("round-" + std::to_string(channels) + ".png");
      maskgit::write_png(path, image);
      const maskgit::ImageInfo info = maskgit::probe_image(path);
      CHECK(info.width == 5);
      CHECK(info.height == 7);
      CHECK(info.channels == channels);
      const torch::Tensor back = maskgit::read_image(path);
      REQUIRE(back.sizes() == image.sizes());
      CHECK(back.scalar_type() == torch::kFloat32);
      CHECK(torch::equal(back, quantized(image)));
    }
  }
}

TEST_CASE("PNG round trip keeps every 8-bit level exactly", "[image]") {
  TempDir dir;
  for (const int64_t channels : {1, 3, 4}) {
    DYNAMIC_SECTION("channels " << channels) {
      // 16x16 per channel with a per-channel offset: every level 0..255 occurs in each channel,
      // and channels differ, so a swapped or dropped channel shows.
      const torch::Tensor levels = (torch::arange(channels * 16 * 16, torch::kLong).view({channels, 16, 16}) +
                                    torch::arange(channels, torch::kLong).mul(37).view({channels, 1, 1})) %
                                   256;
      const torch::Tensor image = levels.to(torch::kFloat32).div(255.0f);
      const std::string path = dir.file("levels-" + std::to_string(channels) + ".png");
      maskgit::write_png(path, image);
      const torch::Tensor back = maskgit::read_image(path);
      REQUIRE(back.sizes() == image.sizes());
      CHECK(torch::equal(back, image));
      CHECK(torch::equal(back.mul(255.0f).round().to(torch::kLong), levels));
      // Spot values, independent of the tensor helpers above.
      CHECK(back[0][0][0].item<float>() == 0.0f);
      CHECK(back[0][15][15].item<float>() == 1.0f);
      CHECK(back[channels - 1][0][1].item<float>() == static_cast<float>((37 * (channels - 1) + 1) % 256) / 255.0f);
    }
  }
}

TEST_CASE("write_png clamps, accepts a batch of one and other dtypes", "[image]") {
  TempDir dir;
  const std::string path = dir.file("clamp.png");
  const torch::Tensor image =
      torch::tensor({-0.5, 0.0, 0.25, 1.0, 2.0, std::nan("")}, torch::kFloat64).view({1, 1, 2, 3});
  maskgit::write_png(path, image);
  const torch::Tensor back = maskgit::read_image(path);
  REQUIRE(back.sizes() == torch::IntArrayRef({1, 2, 3}));
  const torch::Tensor expected =
      torch::tensor({0.0f, 0.0f, 64.0f / 255.0f, 1.0f, 1.0f, 0.0f}).view({1, 2, 3});
  CHECK(torch::equal(back, expected));

  CHECK_THROWS_AS(maskgit::write_png(dir.file("bad.png"), torch::zeros({2, 4, 4})), std::invalid_argument);
  CHECK_THROWS_AS(maskgit::write_png(dir.file("bad.png"), torch::zeros({4, 4})), std::invalid_argument);
  CHECK_FALSE(fs::exists(dir.file("bad.png")));
}

TEST_CASE("write_png creates missing folders and reports unwritable paths as io_error", "[image]") {
  TempDir dir;
  const std::string nested = dir.file("new/folders/out.png");
  maskgit::write_png(nested, torch::zeros({1, 2, 2}));
  CHECK(fs::is_regular_file(nested));

  // A plain file where a folder must go cannot be written through.
  { std::ofstream(dir.file("occupied")) << "not a folder"; }
  const std::string path = dir.file("occupied/out.png");
  const std::string message =
      error_of([&] { maskgit::write_png(path, torch::zeros({1, 2, 2})); }, ExitCode::io_error);
  CHECK_THAT(message, Contains("occupied"));
}

TEST_CASE("text chunks round trip as UTF-8 iTXt right after IHDR", "[image]") {
  TempDir dir;
  const std::string path = dir.file("text.png");
  const std::map<std::string, std::string> text = {
      {"maskgit:model", "models/fashion-mnist"},
      {"maskgit:seed", "42"},
      {"maskgit:source", "d\xc3\xadr/b\xc3\xb6\xc3\xb6t.png"},  // dír/bööt.png
      {"Comment", "spaces, symbols: 100% & \xc3\xa9 \xe2\x86\x92 \xf0\x9f\x90\x9f and\nnewlines"},
      {"Schl\xc3\xbcssel", "a keyword outside ASCII (Latin-1 in the file)"},
      {"empty", ""},
  };
  maskgit::write_png(path, torch::rand({3, 4, 4}), text);
  CHECK(maskgit::read_png_text(path) == text);

  const std::string bytes = slurp(path);
  const std::vector<Chunk> chunks = png_chunks(bytes);
  REQUIRE(chunks.size() >= 2 + text.size());
  CHECK(chunks.front().type == "IHDR");
  for (size_t i = 1; i <= text.size(); ++i) CHECK(chunks[i].type == "iTXt");
  CHECK(chunks.back().type == "IEND");
  for (const Chunk& chunk : chunks) CHECK(chunk.crc_ok);
  // The keyword is stored in Latin-1 (ü is one byte), the text in UTF-8, uncompressed, with an
  // empty language tag and translated keyword.
  const std::string empty_tags(5, '\0');  // keyword end, flag, method, language, translated keyword
  CHECK(bytes.find("iTXtSchl\xfcssel" + empty_tags + "a keyword") != std::string::npos);
  CHECK(bytes.find("iTXtmaskgit:source" + empty_tags + "d\xc3\xadr/b\xc3\xb6\xc3\xb6t.png") != std::string::npos);
  CHECK(bytes.find("tEXt") == std::string::npos);

  // The pixels must still decode with the extra chunks in place.
  CHECK(maskgit::read_image(path).sizes() == torch::IntArrayRef({3, 4, 4}));

  maskgit::write_png(dir.file("plain.png"), torch::rand({1, 2, 2}));
  CHECK(maskgit::read_png_text(dir.file("plain.png")).empty());
}

TEST_CASE("write_png output is deterministic", "[image]") {
  TempDir dir;
  torch::manual_seed(3);
  const torch::Tensor image = torch::rand({3, 16, 12});
  const std::map<std::string, std::string> text = {{"maskgit", "{\"seed\":1}"}, {"maskgit:source", "\xc3\xa9.png"}};
  maskgit::write_png(dir.file("a.png"), image, text);
  maskgit::write_png(dir.file("b.png"), image.clone(), text);
  CHECK(slurp(dir.file("a.png")) == slurp(dir.file("b.png")));
  maskgit::write_png(dir.file("c.png"), image, {{"maskgit", "{\"seed\":2}"}, {"maskgit:source", "\xc3\xa9.png"}});
  CHECK(slurp(dir.file("a.png")) != slurp(dir.file("c.png")));
}

TEST_CASE("write_png rejects keywords PNG does not allow", "[image]") {
  TempDir dir;
  const torch::Tensor image = torch::zeros({1, 2, 2});
  for (const std::string& keyword :
       {std::string(), std::string(80, 'k'), std::string(" lead"), std::string("trail "), std::string("two  spaces"),
        std::string("tab\there"), std::string("nbsp\xc2\xa0"), std::string("arrow\xe2\x86\x92"),
        std::string("latin1 byte \xe9"), std::string("\xc3")}) {
    CAPTURE(keyword);
    CHECK_THROWS_AS(maskgit::write_png(dir.file("k.png"), image, {{keyword, "x"}}), std::invalid_argument);
  }
  CHECK_THROWS_AS(maskgit::write_png(dir.file("k.png"), image, {{"key", std::string("a\0b", 3)}}),
                  std::invalid_argument);
  CHECK_FALSE(fs::exists(dir.file("k.png")));
  maskgit::write_png(dir.file("k.png"), image, {{std::string(79, 'k'), "ok"}});
  CHECK(maskgit::read_png_text(dir.file("k.png")).count(std::string(79, 'k')) == 1);
  // 79 Latin-1 characters are up to 158 bytes of UTF-8.
  std::string long_latin1;
  for (int i = 0; i < 79; ++i) long_latin1 += "\xc3\xbf";  // ÿ
  maskgit::write_png(dir.file("k.png"), image, {{long_latin1, "ok"}});
  CHECK(maskgit::read_png_text(dir.file("k.png")).at(long_latin1) == "ok");
}

TEST_CASE("write_png refuses text that is not UTF-8", "[image]") {
  TempDir dir;
  const torch::Tensor image = torch::zeros({1, 2, 2});
  for (const std::string& bad : {std::string("latin1 \xe9"), std::string("cut \xc3"), std::string("overlong \xc0\xaf"),
                                 std::string("surrogate \xed\xa0\x80"), std::string("\xff")}) {
    CAPTURE(bad);
    try {
      maskgit::write_png(dir.file("u.png"), image, {{"maskgit:source", bad}});
      FAIL("expected std::invalid_argument");
    } catch (const std::invalid_argument& e) {
      CHECK_THAT(e.what(), Contains("\"maskgit:source\" is not valid UTF-8"));
    }
  }
  CHECK_FALSE(fs::exists(dir.file("u.png")));
}

TEST_CASE("JPEG files are read", "[image]") {
  TempDir dir;
  const int width = 16;
  const int height = 8;
  std::vector<unsigned char> rgb;
  for (int i = 0; i < width * height; ++i) {
    rgb.push_back(200);
    rgb.push_back(100);
    rgb.push_back(50);
  }
  const std::string color = write_jpeg(dir, "color.jpg", width, height, 3, rgb);
  const maskgit::ImageInfo info = maskgit::probe_image(color);
  CHECK(info.width == width);
  CHECK(info.height == height);
  CHECK(info.channels == 3);
  const torch::Tensor image = maskgit::read_image(color);
  REQUIRE(image.sizes() == torch::IntArrayRef({3, height, width}));
  const torch::Tensor expected = torch::tensor({200.0f, 100.0f, 50.0f}).div(255).view({3, 1, 1}).expand_as(image);
  CHECK((image - expected).abs().max().item<float>() < 0.03f);

  // stb's JPEG writer always stores YCbCr, so grey input comes back as three equal channels.
  const std::vector<unsigned char> grey(static_cast<size_t>(width * height), 128);
  const std::string grey_path = write_jpeg(dir, "grey.JPEG", width, height, 1, grey);
  const torch::Tensor grey_image = maskgit::read_image_as(grey_path, 1, width, height);
  REQUIRE(grey_image.sizes() == torch::IntArrayRef({1, height, width}));
  CHECK((grey_image - 128.0f / 255.0f).abs().max().item<float>() < 0.02f);
}

TEST_CASE("unreadable images are bad input naming the file", "[image]") {
  TempDir dir;

  SECTION("missing file") {
    const std::string path = dir.file("nope.png");
    const std::string message = error_of([&] { maskgit::read_image(path); }, ExitCode::bad_input);
    CHECK(message == path + ": no such file");
    error_of([&] { maskgit::probe_image(path); }, ExitCode::bad_input);
    error_of([&] { maskgit::read_png_text(path); }, ExitCode::bad_input);
  }

  SECTION("not an image") {
    const std::string path = dir.file("notes.png");
    spit(path, "this is plain text, not pixels\n");
    const std::string message = error_of([&] { maskgit::read_image(path); }, ExitCode::bad_input);
    CHECK_THAT(message, Contains(path + ": not a PNG or JPEG image ("));
    error_of([&] { maskgit::read_png_text(path); }, ExitCode::bad_input);
  }

  SECTION("empty file") {
    const std::string path = dir.file("empty.png");
    spit(path, "");
    CHECK_THAT(error_of([&] { maskgit::probe_image(path); }, ExitCode::bad_input),
               Contains(path + ": not a PNG or JPEG image"));
  }

  SECTION("a directory") {
    CHECK_THAT(error_of([&] { maskgit::read_image(dir.file("")); }, ExitCode::bad_input), Contains(dir.file("")));
  }

  SECTION("zero-sized and oversized PNG") {
    const std::string good = dir.file("good.png");
    maskgit::write_png(good, torch::rand({1, 3, 3}));
    std::string bytes = slurp(good);
    put_be32(bytes, 16, 0);  // IHDR width
    const std::string zero = dir.file("zero.png");
    spit(zero, bytes);
    CHECK(error_of([&] { maskgit::probe_image(zero); }, ExitCode::bad_input) ==
          zero + ": image size 0x3 is out of range (1..16384 per side)");

    put_be32(bytes, 16, 3);
    put_be32(bytes, 20, maskgit::kMaxImageSide + 1);  // IHDR height
    const std::string huge = dir.file("huge.png");
    spit(huge, bytes);
    CHECK_THAT(error_of([&] { maskgit::read_image(huge); }, ExitCode::bad_input),
               Contains(huge + ": image size 3x16385 is out of range"));
  }

  SECTION("truncated PNG") {
    const std::string good = dir.file("good.png");
    maskgit::write_png(good, torch::rand({3, 32, 32}), {{"key", "value"}});
    const std::string bytes = slurp(good);

    const std::string cut = dir.file("cut.png");
    spit(cut, bytes.substr(0, bytes.size() / 2));
    CHECK_THAT(error_of([&] { maskgit::read_image(cut); }, ExitCode::bad_input), Contains(cut + ": "));
    CHECK_THAT(error_of([&] { maskgit::read_png_text(cut); }, ExitCode::bad_input),
               Contains(cut + ": truncated PNG"));

    const std::string header_only = dir.file("header.png");
    spit(header_only, bytes.substr(0, 20));
    CHECK_THAT(error_of([&] { maskgit::read_image(header_only); }, ExitCode::bad_input),
               Contains(header_only + ": "));
  }
}

TEST_CASE("read_image_as converts channels and checks the size", "[image]") {
  TempDir dir;
  const std::string path = dir.file("rgba.png");
  maskgit::write_png(path, torch::rand({4, 4, 6}));

  const torch::Tensor grey = maskgit::read_image_as(path, 1, 6, 4);
  CHECK(grey.sizes() == torch::IntArrayRef({1, 4, 6}));
  CHECK(maskgit::read_image_as(path, 3).sizes() == torch::IntArrayRef({3, 4, 6}));
  CHECK(maskgit::read_image_as(path, 3, 6).sizes() == torch::IntArrayRef({3, 4, 6}));

  CHECK(error_of([&] { maskgit::read_image_as(path, 1, 5, 4); }, ExitCode::bad_input) ==
        path + ": image is 6x4, expected 5x4");
  CHECK(error_of([&] { maskgit::read_image_as(path, 1, 0, 28); }, ExitCode::bad_input) ==
        path + ": image is 6x4, expected 6x28");
}

TEST_CASE("convert_channels", "[image]") {
  const torch::Tensor rgb = torch::tensor({1.0f, 0.0f, 0.5f}).view({3, 1, 1});

  SECTION("RGB to grey uses Rec.601 luma") {
    const torch::Tensor grey = maskgit::convert_channels(rgb, 1);
    REQUIRE(grey.sizes() == torch::IntArrayRef({1, 1, 1}));
    CHECK(grey.item<float>() == Approx(0.299 + 0.114 * 0.5));
  }
  SECTION("grey to RGB replicates") {
    const torch::Tensor grey = torch::rand({1, 2, 3});
    const torch::Tensor color = maskgit::convert_channels(grey, 3);
    REQUIRE(color.sizes() == torch::IntArrayRef({3, 2, 3}));
    for (int64_t c = 0; c < 3; ++c) CHECK(torch::equal(color[c], grey[0]));
  }
  SECTION("alpha is composited over black: transparent pixels never show a hidden colour") {
    const torch::Tensor rgba = torch::cat({rgb, torch::full({1, 1, 1}, 0.25f)});
    CHECK(torch::equal(maskgit::convert_channels(rgba, 3), rgb * 0.25f));
    const torch::Tensor opaque = torch::cat({rgb, torch::ones({1, 1, 1})});
    CHECK(torch::equal(maskgit::convert_channels(opaque, 3), rgb));
    const torch::Tensor grey_alpha = torch::tensor({0.75f, 0.0f}).view({2, 1, 1});
    CHECK(torch::equal(maskgit::convert_channels(grey_alpha, 1), torch::zeros({1, 1, 1})));
    CHECK(torch::equal(maskgit::convert_channels(grey_alpha, 3), torch::zeros({3, 1, 1})));
  }
  SECTION("same channels is a no-op") {
    CHECK(torch::equal(maskgit::convert_channels(rgb, 3), rgb));
  }
  SECTION("batches") {
    const torch::Tensor batch = torch::rand({5, 3, 4, 4});
    const torch::Tensor grey = maskgit::convert_channels(batch, 1);
    REQUIRE(grey.sizes() == torch::IntArrayRef({5, 1, 4, 4}));
    CHECK(torch::allclose(grey[2], maskgit::convert_channels(batch[2], 1)));
    const torch::Tensor luma = batch.select(1, 0) * 0.299f + batch.select(1, 1) * 0.587f + batch.select(1, 2) * 0.114f;
    CHECK(torch::allclose(grey.squeeze(1), luma, 1e-6, 1e-6));

    const torch::Tensor color = maskgit::convert_channels(grey, 3);
    REQUIRE(color.sizes() == torch::IntArrayRef({5, 3, 4, 4}));
    for (int64_t c = 0; c < 3; ++c) CHECK(torch::equal(color.select(1, c), grey.select(1, 0)));

    const torch::Tensor rgba = torch::cat({batch, torch::full({5, 1, 4, 4}, 0.5f)}, 1);
    CHECK(torch::equal(maskgit::convert_channels(rgba, 3), batch * 0.5f));
    CHECK(torch::allclose(maskgit::convert_channels(rgba, 1), grey * 0.5f));
    const torch::Tensor grey_alpha = torch::cat({grey, torch::ones({5, 1, 4, 4})}, 1);
    CHECK(torch::equal(maskgit::convert_channels(grey_alpha, 1), grey));
    CHECK(torch::equal(maskgit::convert_channels(grey_alpha, 3), color));
  }
  SECTION("bad arguments") {
    CHECK_THROWS_AS(maskgit::convert_channels(rgb, 2), std::invalid_argument);
    CHECK_THROWS_AS(maskgit::convert_channels(torch::zeros({4, 4}), 1), std::invalid_argument);
    CHECK_THROWS_AS(maskgit::convert_channels(torch::zeros({5, 4, 4}), 1), std::invalid_argument);
  }
}

TEST_CASE("format_output_path expands one integer conversion", "[image]") {
  using maskgit::format_output_path;
  CHECK(format_output_path("out/%05d.png", 7) == "out/00007.png");
  CHECK(format_output_path("%d", 42) == "42");
  CHECK(format_output_path("%%", 42) == "%");
  CHECK(format_output_path("out-%d.png", 7) == "out-7.png");
  CHECK(format_output_path("out-%i.png", 12) == "out-12.png");
  CHECK(format_output_path("out-%05d.png", 7) == "out-00007.png");
  CHECK(format_output_path("out-%5d.png", 7) == "out-    7.png");
  CHECK(format_output_path("%03d", 12345) == "12345");
  CHECK(format_output_path("%05d", -3) == "-0003");
  CHECK(format_output_path("100%%-%d.png", 3) == "100%-3.png");
  CHECK(format_output_path("%d%%", 3) == "3%");
  CHECK(format_output_path("single.png", 0) == "single.png");
  CHECK(format_output_path("single.png", 9) == "single.png");
  CHECK(format_output_path("50%%.png", 9) == "50%.png");

  for (const char* bad : {"a-%s.png", "%d-%d.png", "trailing%", "%x", "%5", "%-d", "%ld"}) {
    CAPTURE(bad);
    CHECK_THAT(error_of([&] { format_output_path(bad, 1); }, ExitCode::usage), Contains(bad));
  }
}

TEST_CASE("validate_output_pattern", "[image]") {
  using maskgit::validate_output_pattern;
  CHECK_NOTHROW(validate_output_pattern("one.png", 1));
  CHECK_NOTHROW(validate_output_pattern("many-%03d.png", 10));
  CHECK_NOTHROW(validate_output_pattern("many-%d.png", 1));
  // InvalidArgument("output"): the tools put their flag (--output, --originals) in its place.
  CHECK(error_of([] { validate_output_pattern("one.png", 3); }, ExitCode::usage) ==
        "output: pattern \"one.png\" needs one %d conversion to write 3 files");
  CHECK(error_of([] { validate_output_pattern("100%%.png", 2); }, ExitCode::usage) ==
        "output: pattern \"100%%.png\" needs one %d conversion to write 2 files");
  CHECK_THAT(error_of([] { validate_output_pattern("a-%d-%d.png", 4); }, ExitCode::usage),
             Contains("output: pattern \"a-%d-%d.png\""));
  CHECK_THAT(error_of([] { validate_output_pattern("a-%s.png", 1); }, ExitCode::usage),
             Contains("output: pattern \"a-%s.png\""));
  CHECK(error_of([] { validate_output_pattern("", 1); }, ExitCode::usage) == "output: the output path is empty");
  const auto empty = maskgit::testing::invalid_argument_of([] { validate_output_pattern("", 1); });
  CHECK(empty.argument == "output");
  CHECK(empty.message == "the output path is empty");
}

TEST_CASE("hostile image files are refused before the decoder allocates or overruns", "[image]") {
  // Found by fuzz/fuzz_image; fuzz/corpus/image/regress-* hold them too.
  const auto chunk = [](const std::string& type, const std::string& body) {
    std::string out(4, '\0');
    put_be32(out, 0, static_cast<uint32_t>(body.size()));
    const std::string typed = type + body;
    out += typed + std::string(4, '\0');
    put_be32(out, out.size() - 4,
             static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(typed.data()), static_cast<uInt>(typed.size()))));
    return out;
  };
  const auto png_header = [&](uint32_t width, uint32_t height, char color_type) {
    std::string body(13, '\0');
    put_be32(body, 0, width);
    put_be32(body, 4, height);
    body[8] = 8;
    body[9] = color_type;
    return std::string("\x89PNG\r\n\x1a\n", 8) + chunk("IHDR", body);
  };
  const auto refusal = [](const std::string& bytes) {
    return error_of([&] { maskgit::decode_image(bytes, "hostile"); }, ExitCode::bad_input);
  };

  // An IDAT chunk declaring 2 GiB in a 43-byte file: stb grew its buffer to that before reading.
  std::string length(4, '\0');
  put_be32(length, 0, 0x7ffffff0u);
  CHECK(refusal(png_header(1, 1, 0) + length + "IDAT\x78\xda") ==
        "hostile: truncated PNG (chunk at byte 33 runs past the end)");

  // 16384x16384 RGBA from 65 bytes: stb allocated the whole 1 GiB stream before inflating.
  const std::string empty_stream("\x78\x9c\x03\x00\x00\x00\x00\x01", 8);
  CHECK_THAT(refusal(png_header(16384, 16384, 6) + chunk("IDAT", empty_stream) + chunk("IEND", "")),
             Contains("hostile: a 16384x16384 PNG needs 1073758208 bytes of image data, more than 65 compressed"));

  // A 16384x16384 JPEG frame with no scan: stb allocated it and made up the missing pixels.
  const std::string frame("\xff\xd8\xff\xc0\x00\x0b\x08\x40\x00\x40\x00\x01\x01\x11\x00\xff\xd9", 17);
  CHECK_THAT(refusal(frame), Contains("hostile: a 16384x16384 JPEG has 4194304 blocks of 8x8 pixels, more than 17 bytes"));

  // A Huffman table of 16 x 17 = 272 codes: stb 2.27 wrote past its 256-entry tables.
  const std::string dht = std::string("\xff\xd8\xff\xc4\x01\x13\x00", 7) + std::string(16, '\x11') +
                          std::string(272, '\0') + "\xff\xd9";
  CHECK(refusal(dht) == "hostile: corrupt JPEG (Huffman table at byte 6 has 272 codes, at most 256)");
  CHECK(error_of([&] { maskgit::probe_image_bytes(dht, "hostile"); }, ExitCode::bad_input) == refusal(dht));
}

TEST_CASE("a PNG colour key (tRNS on grey or RGB) is transparency, composited over black", "[image]") {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("maskgit-trns-" + std::to_string(::getpid()) + ".png")).string();
  for (const int64_t channels : {1, 3}) {
    // Two pixels: white (the key) and mid-grey.
    torch::Tensor pixels = torch::ones({channels, 1, 2});
    pixels.select(2, 1).fill_(128.0f / 255.0f);
    maskgit::write_png(path, pixels);
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // tRNS for colour type 0 holds one 16-bit grey level, for type 2 one 16-bit RGB triple: 255.
    std::string body;
    for (int64_t c = 0; c < channels; ++c) body += std::string("\x00\xff", 2);
    std::string chunk(4, '\0');
    for (int i = 0; i < 4; ++i) chunk[static_cast<size_t>(i)] = static_cast<char>((body.size() >> (24 - 8 * i)) & 0xff);
    const std::string typed = "tRNS" + body;
    const uLong crc = crc32(0L, reinterpret_cast<const Bytef*>(typed.data()), static_cast<uInt>(typed.size()));
    chunk += typed;
    for (int i = 0; i < 4; ++i) chunk += static_cast<char>((crc >> (24 - 8 * i)) & 0xff);
    bytes.insert(8 + 25, chunk);  // right after IHDR
    const torch::Tensor decoded = maskgit::decode_image(bytes, path);
    REQUIRE(decoded.size(0) == channels + 1);
    CHECK(decoded[channels][0][0].item<float>() == 0.0f);
    CHECK(decoded[channels][0][1].item<float>() == 1.0f);
    const torch::Tensor grey = maskgit::convert_channels(decoded, 1);
    CHECK(grey[0][0][0].item<float>() == 0.0f);
    CHECK(grey[0][0][1].item<float>() == Approx(128.0 / 255.0).margin(1e-3));
  }
  std::filesystem::remove(path);
}

TEST_CASE("tEXt and zTXt text is read from Latin-1 as UTF-8, iTXt compressed or not", "[image]") {
  const std::string itxt_tags(4, '\0');  // flag 0, method 0, empty language, empty translated keyword
  const std::string png = grey_png(
      png_chunk("tEXt", std::string("Title\0caf\xe9 \xa9 \xff", 15)) +
      png_chunk("zTXt", std::string("Caf\xe9\0\0", 6) + zlib_compress("na\xefve \xb5")) +
      png_chunk("iTXt", std::string("plain\0", 6) + itxt_tags + "\xe2\x86\x92 \xf0\x9f\x90\x9f") +
      png_chunk("iTXt", std::string("packed\0\x01\0en\0gepackt\0", 20) + zlib_compress("gr\xc3\xbc\xc3\x9f")) +
      png_chunk("tEXt", std::string("none\0", 5)));
  const std::map<std::string, std::string> expected = {
      {"Title", "caf\xc3\xa9 \xc2\xa9 \xc3\xbf"},
      {"Caf\xc3\xa9", "na\xc3\xafve \xc2\xb5"},
      {"plain", "\xe2\x86\x92 \xf0\x9f\x90\x9f"},
      {"packed", "gr\xc3\xbc\xc3\x9f"},
      {"none", ""},
  };
  CHECK(maskgit::parse_png_text(png, "mixed.png") == expected);
  // Text chunks do not disturb the pixels.
  const torch::Tensor image = maskgit::decode_image(png, "mixed.png");
  CHECK(torch::equal(image, torch::tensor({0.0f, 64.0f, 128.0f, 255.0f}).div(255.0f).view({1, 2, 2})));
}

TEST_CASE("text after the image data is read and a repeated keyword keeps its first text", "[image]") {
  const std::string png = grey_png(png_chunk("tEXt", std::string("key\0first", 9)),
                                   png_chunk("tEXt", std::string("key\0second", 10)) +
                                       png_chunk("tEXt", std::string("late\0after IDAT", 15)));
  const std::map<std::string, std::string> expected = {{"key", "first"}, {"late", "after IDAT"}};
  CHECK(maskgit::parse_png_text(png, "order.png") == expected);
}

TEST_CASE("malformed text chunks are refused naming the file", "[image]") {
  const std::string itxt_tags(4, '\0');
  const std::string bomb = zlib_compress(std::string(size_t{9} << 20, 'a'));  // 9 MiB of text
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"iTXt text not UTF-8", png_chunk("iTXt", std::string("key\0", 4) + itxt_tags + "caf\xe9")},
      {"compressed iTXt not UTF-8",
       png_chunk("iTXt", std::string("key\0\x01\0\0\0", 8) + zlib_compress("\xc0\xaf"))},
      {"keyword with a leading space", png_chunk("tEXt", std::string(" key\0value", 10))},
      {"keyword of 80 characters", png_chunk("tEXt", std::string(80, 'k') + std::string("\0v", 2))},
      {"no keyword", png_chunk("tEXt", std::string("\0value", 6))},
      {"zTXt with a broken stream", png_chunk("zTXt", std::string("key\0\0", 5) + "not deflate at all")},
      {"zTXt with an unknown method", png_chunk("zTXt", std::string("key\0\x01", 5) + zlib_compress("x"))},
      {"iTXt with a compression flag of 2", png_chunk("iTXt", std::string("key\0\x02\0\0\0x", 9))},
      {"zTXt inflating past the limit", png_chunk("zTXt", std::string("key\0\0", 5) + bomb)},
  };
  for (const auto& [name, chunk] : cases) {
    CAPTURE(name);
    for (const bool after_idat : {false, true}) {
      CAPTURE(after_idat);
      const std::string png = after_idat ? grey_png("", chunk) : grey_png(chunk);
      const std::string message =
          error_of([&] { maskgit::parse_png_text(png, "dir/bad.png"); }, ExitCode::bad_input);
      CHECK_THAT(message, Contains("dir/bad.png: "));
      if (name.find("UTF-8") != std::string::npos)
        CHECK_THAT(message, Contains("the iTXt text of \"key\" is not valid UTF-8"));
      else if (name.find("limit") != std::string::npos)
        CHECK_THAT(message, Contains("over the reader's limits"));
      else
        CHECK_THAT(message, Contains("1 of its 1 text chunks are malformed"));
      // The pixels are still readable: spng drops an unreadable text chunk.
      if (name.find("limit") == std::string::npos) CHECK(maskgit::decode_image(png, "dir/bad.png").size(0) == 1);
    }
  }
}

TEST_CASE("a PNG whose CRC does not match is refused naming the file", "[image]") {
  TempDir dir;
  const std::string good = dir.file("good.png");
  maskgit::write_png(good, torch::rand({3, 8, 8}), {{"maskgit", "{\"seed\":1}"}});
  const std::string bytes = slurp(good);
  REQUIRE(maskgit::read_png_text(good).size() == 1);
  for (const char* chunk_type : {"IHDR", "iTXt", "IDAT", "IEND"}) {
    const std::string type = chunk_type;
    const size_t offset = chunk_offset(bytes, type);
    const size_t length = be32(bytes, offset);
    // The stored CRC changed, and (separately) one data byte changed under the stored CRC.
    std::vector<std::pair<std::string, size_t>> flips = {{"crc", offset + 8 + length}};
    if (length > 0) flips.push_back({"data", offset + 8 + length / 2});
    for (const auto& [what, at] : flips) {
      DYNAMIC_SECTION(type << " " << what) {
        std::string broken = bytes;
        broken[at] = static_cast<char>(broken[at] ^ 0x10);
        const std::string path = dir.file("broken-" + type + "-" + what + ".png");
        spit(path, broken);
        const std::string expected = path + ": corrupt PNG (invalid chunk checksum)";
        if (what == "data" && type == "IDAT") {
          // A changed byte of compressed image data breaks the stream before its CRC is read.
          CHECK_THAT(error_of([&] { maskgit::read_image(path); }, ExitCode::bad_input), Contains(path + ": corrupt PNG ("));
          CHECK_THAT(error_of([&] { maskgit::read_png_text(path); }, ExitCode::bad_input),
                     Contains(path + ": corrupt PNG ("));
        } else {
          CHECK(error_of([&] { maskgit::read_image(path); }, ExitCode::bad_input) == expected);
          CHECK(error_of([&] { maskgit::read_png_text(path); }, ExitCode::bad_input) == expected);
        }
        // The probe reads the chunks before the image data.
        if (type == "IHDR" || type == "iTXt")
          CHECK(error_of([&] { maskgit::probe_image(path); }, ExitCode::bad_input) == expected);
      }
    }
  }
}

TEST_CASE("every truncation of a PNG is refused naming the file", "[image]") {
  TempDir dir;
  const std::string good = dir.file("good.png");
  maskgit::write_png(good, torch::rand({3, 6, 5}), {{"maskgit", "{\"seed\":1}"}, {"note", "\xc3\xa9t\xc3\xa9"}});
  const std::string bytes = slurp(good);
  for (size_t size = 0; size < bytes.size(); ++size) {
    CAPTURE(size);
    const std::string cut = bytes.substr(0, size);
    const std::string source = "cut/" + std::to_string(size) + ".png";
    CHECK_THAT(error_of([&] { maskgit::decode_image(cut, source); }, ExitCode::bad_input), Contains(source + ": "));
    CHECK_THAT(error_of([&] { maskgit::probe_image_bytes(cut, source); }, ExitCode::bad_input),
               Contains(source + ": "));
    CHECK_THAT(error_of([&] { maskgit::parse_png_text(cut, source); }, ExitCode::bad_input), Contains(source + ": "));
  }
  // Data after IEND is not part of the PNG.
  CHECK(maskgit::parse_png_text(bytes + "trailing", "long.png").size() == 2);
  CHECK(torch::equal(maskgit::decode_image(bytes + "trailing", "long.png"), maskgit::read_image(good)));
}

TEST_CASE("corrupt PNG structure is refused naming the file", "[image]") {
  const std::string rows_data = zlib_compress(std::string("\0\x01\x02", 3));
  std::string broken_stream = rows_data;
  broken_stream[broken_stream.size() - 1] ^= 0x55;  // the Adler-32 checksum of the stream
  const auto with_ihdr = [](int bit_depth, int color_type, const std::string& rest) {
    std::string header(13, '\0');
    put_be32(header, 0, 2);
    put_be32(header, 4, 1);
    header[8] = static_cast<char>(bit_depth);
    header[9] = static_cast<char>(color_type);
    return std::string("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", header) + rest + png_chunk("IEND", "");
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"bit depth 3", with_ihdr(3, 0, png_chunk("IDAT", rows_data))},
      {"colour type 5", with_ihdr(8, 5, png_chunk("IDAT", rows_data))},
      {"RGB at 4 bits", with_ihdr(4, 2, png_chunk("IDAT", rows_data))},
      {"palette without PLTE", with_ihdr(8, 3, png_chunk("IDAT", rows_data))},
      {"no IDAT", with_ihdr(8, 0, "")},
      {"deflate checksum wrong", with_ihdr(8, 0, png_chunk("IDAT", broken_stream))},
      {"not deflate", with_ihdr(8, 0, png_chunk("IDAT", "garbage, not a zlib stream"))},
      {"too little image data", with_ihdr(8, 0, png_chunk("IDAT", zlib_compress(std::string(1, '\0'))))},
      {"an unknown critical chunk", with_ihdr(8, 0, png_chunk("ABCD", "x") + png_chunk("IDAT", rows_data))},
      {"no IEND", grey_png().substr(0, grey_png().size() - 12)},
  };
  for (const auto& [name, png] : cases) {
    CAPTURE(name);
    CHECK_THAT(error_of([&] { maskgit::decode_image(png, "bad.png"); }, ExitCode::bad_input), Contains("bad.png: "));
    CHECK_THAT(error_of([&] { maskgit::parse_png_text(png, "bad.png"); }, ExitCode::bad_input), Contains("bad.png: "));
  }
  // The same file with a sound stream is read.
  CHECK(maskgit::decode_image(with_ihdr(8, 0, png_chunk("IDAT", rows_data)), "ok.png").sizes() ==
        torch::IntArrayRef({1, 1, 2}));
}

TEST_CASE("16-bit PNGs are read with their precision", "[image]") {
  const auto value = [](uint32_t sample) { return static_cast<float>(sample) / 65535.0f; };
  SECTION("grey") {
    const std::string png = handmade_png(3, 1, 16, 0, {be16(0) + be16(0x1234) + be16(0xffff)});
    CHECK(maskgit::probe_image_bytes(png, "g16.png").channels == 1);
    const torch::Tensor image = maskgit::decode_image(png, "g16.png");
    CHECK(torch::equal(image, torch::tensor({0.0f, value(0x1234), 1.0f}).view({1, 1, 3})));
  }
  SECTION("grey with a colour key") {
    const std::string png = handmade_png(2, 1, 16, 0, {be16(0x1234) + be16(0x8000)}, png_chunk("tRNS", be16(0x1234)));
    CHECK(maskgit::probe_image_bytes(png, "g16k.png").channels == 2);
    const torch::Tensor image = maskgit::decode_image(png, "g16k.png");
    CHECK(torch::equal(image, torch::tensor({value(0x1234), value(0x8000), 0.0f, 1.0f}).view({2, 1, 2})));
  }
  SECTION("grey and alpha") {
    const std::string png = handmade_png(1, 1, 16, 4, {be16(0x0101) + be16(0x4000)});
    CHECK(torch::equal(maskgit::decode_image(png, "ga16.png"),
                       torch::tensor({value(0x0101), value(0x4000)}).view({2, 1, 1})));
  }
  SECTION("RGB") {
    const std::string png = handmade_png(2, 1, 16, 2, {be16(1) + be16(0x8000) + be16(0xffff) + be16(2) + be16(3) + be16(4)});
    CHECK(maskgit::probe_image_bytes(png, "rgb16.png").channels == 3);
    CHECK(torch::equal(maskgit::decode_image(png, "rgb16.png"),
                       torch::tensor({value(1), value(2), value(0x8000), value(3), 1.0f, value(4)}).view({3, 1, 2})));
  }
  SECTION("RGB with a colour key") {
    const std::string png = handmade_png(2, 1, 16, 2, {be16(1) + be16(2) + be16(3) + be16(1) + be16(2) + be16(4)},
                                         png_chunk("tRNS", be16(1) + be16(2) + be16(3)));
    const torch::Tensor image = maskgit::decode_image(png, "rgb16k.png");
    REQUIRE(image.size(0) == 4);
    CHECK(torch::equal(image[3], torch::tensor({0.0f, 1.0f}).view({1, 2})));
    CHECK(image[2][0][1].item<float>() == value(4));
  }
  SECTION("RGBA") {
    const std::string png = handmade_png(1, 1, 16, 6, {be16(0xfffe) + be16(0x00ff) + be16(0xff00) + be16(0x7fff)});
    CHECK(torch::equal(maskgit::decode_image(png, "rgba16.png"),
                       torch::tensor({value(0xfffe), value(0x00ff), value(0xff00), value(0x7fff)}).view({4, 1, 1})));
  }
}

TEST_CASE("palette and low bit depth PNGs are read", "[image]") {
  const std::string palette = png_chunk("PLTE", std::string("\xff\x00\x00\x00\xff\x00\x00\x00\xff\x0a\x14\x1e", 12));
  const torch::Tensor colours = torch::tensor({255.0f, 0.0f, 0.0f, 10.0f,  //
                                               0.0f, 255.0f, 0.0f, 20.0f,  //
                                               0.0f, 0.0f, 255.0f, 30.0f})
                                    .div(255.0f)
                                    .view({3, 1, 4});
  SECTION("2-bit palette") {
    const std::string png = handmade_png(4, 1, 2, 3, {std::string("\x1b", 1)}, palette);  // indices 0 1 2 3
    CHECK(maskgit::probe_image_bytes(png, "p2.png").channels == 3);
    CHECK(torch::equal(maskgit::decode_image(png, "p2.png"), colours));
  }
  SECTION("8-bit palette with transparency") {
    const std::string png = handmade_png(4, 1, 8, 3, {std::string("\x00\x01\x02\x03", 4)},
                                         palette + png_chunk("tRNS", std::string("\x00\x80", 2)));
    CHECK(maskgit::probe_image_bytes(png, "p8.png").channels == 4);
    const torch::Tensor image = maskgit::decode_image(png, "p8.png");
    REQUIRE(image.size(0) == 4);
    CHECK(torch::equal(image.narrow(0, 0, 3), colours));
    CHECK(torch::equal(image[3], torch::tensor({0.0f, 128.0f, 255.0f, 255.0f}).div(255.0f).view({1, 4})));
  }
  SECTION("an index past the palette reads as black") {
    const std::string png = handmade_png(1, 1, 8, 3, {std::string("\x09", 1)}, palette);
    CHECK(torch::equal(maskgit::decode_image(png, "p9.png"), torch::zeros({3, 1, 1})));
  }
  SECTION("1-bit grey") {
    const std::string png = handmade_png(9, 1, 1, 0, {std::string("\xa5\x80", 2)});  // 1010 0101 1
    CHECK(torch::equal(maskgit::decode_image(png, "g1.png"),
                       torch::tensor({1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 1.0f, 0.0f, 1.0f, 1.0f}).view({1, 1, 9})));
  }
  SECTION("4-bit grey") {
    const std::string png = handmade_png(3, 1, 4, 0, {std::string("\x0f\x50", 2)});
    CHECK(torch::equal(maskgit::decode_image(png, "g4.png"),
                       torch::tensor({0.0f, 255.0f, 85.0f}).div(255.0f).view({1, 1, 3})));
  }
  SECTION("8-bit grey and alpha") {
    const std::string png = handmade_png(1, 1, 8, 4, {std::string("\x40\x80", 2)});
    CHECK(maskgit::probe_image_bytes(png, "ga8.png").channels == 2);
    CHECK(torch::equal(maskgit::decode_image(png, "ga8.png"), torch::tensor({64.0f, 128.0f}).div(255.0f).view({2, 1, 1})));
  }
}
