#include "io/image.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spng.h>
#include <sys/stat.h>

#include <cctype>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <filesystem>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "common/error.h"
#include "io/atomic_file.h"
#include "io/json.h"

// PNG goes through libspng (every chunk's CRC checked, iTXt written); stb_image reads JPEG only.
// Static linkage keeps stb's symbols private to this file, so another translation unit (a test,
// another tool) can carry its own copy of stb without duplicate-symbol clashes.
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_JPEG
#define STBI_NO_STDIO
#define STBI_FAILURE_USERMSG
// Zeroed allocations: stb_image 2.27 (Debian's) reads a JPEG scan's Huffman tables even when
// no DHT segment defined them, from its uninitialised decoder state, and indexes with what it
// finds. Zeroed, an undefined table decodes every code as symbol 0 and stays in bounds.
#define STBI_MALLOC(size) std::calloc(1, size)
#define STBI_REALLOC(pointer, size) std::realloc(pointer, size)
#define STBI_FREE(pointer) std::free(pointer)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
// stb_image 2.27's JPEG decoder overflows signed ints (DC prediction, dequantisation) and
// shifts by 32 or more (an exhausted bit buffer) on corrupt entropy-coded data: arithmetic on
// garbage that yields garbage pixels, fixed upstream in 2.28 with range checks. UBSan's checks
// for those kinds are off for stb's functions only (clang: the fuzz/ build); every other check
// stays on.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((no_sanitize("signed-integer-overflow", "shift"))), apply_to = function)
#endif
#include <stb_image.h>
#if defined(__clang__)
#pragma clang attribute pop
#endif
#pragma GCC diagnostic pop

namespace maskgit {
namespace {

constexpr unsigned char kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
// Deflate's largest expansion: 258 bytes from a 2-bit length/distance code pair.
constexpr uint64_t kMaxDeflateRatio = 1032;

const stbi_uc* as_bytes(const std::string& bytes) { return reinterpret_cast<const stbi_uc*>(bytes.data()); }

uint32_t read_u32(const std::string& bytes, size_t offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + offset);
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

bool has_png_signature(const std::string& bytes) {
  return bytes.size() >= 8 && std::memcmp(bytes.data(), kPngSignature, 8) == 0;
}

std::string read_image_file(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::exists(path, error)) throw_bad_input(fmt::format("{}: no such file", path));
  return read_file_bytes(path);
}

[[noreturn]] void throw_size_out_of_range(const std::string& path, int64_t width, int64_t height) {
  throw_bad_input(fmt::format("{}: image size {}x{} is out of range (1..{} per side)", path, width, height,
                              kMaxImageSide));
}

// Calls visit(type, data offset, length) for each chunk of a PNG up to IEND, after checking
// that the chunk lies inside the file; returns whether IEND was reached.
template <typename Visit>
bool walk_png_chunks(const std::string& bytes, const std::string& path, Visit&& visit) {
  size_t offset = 8;
  while (offset < bytes.size()) {
    if (bytes.size() - offset < 12)
      throw_bad_input(fmt::format("{}: truncated PNG (chunk at byte {} runs past the end)", path, offset));
    const uint32_t length = read_u32(bytes, offset);
    if (length > 0x7fffffffu) throw_bad_input(fmt::format("{}: corrupt PNG (chunk length {})", path, length));
    if (length > bytes.size() - offset - 12)
      throw_bad_input(fmt::format("{}: truncated PNG (chunk at byte {} runs past the end)", path, offset));
    const std::string type = bytes.substr(offset + 4, 4);
    visit(type, offset + 8, length);
    if (type == "IEND") return true;
    offset += 12 + size_t{length};
  }
  return false;
}

// Where a JPEG's data starts after its SOI marker (FF D8, after any FF fill bytes, as stb
// accepts it), or 0 when the bytes are not a JPEG.
size_t jpeg_start(const std::string& bytes) {
  size_t pos = 0;
  if (bytes.empty() || static_cast<unsigned char>(bytes[0]) != 0xff) return 0;
  while (pos < bytes.size() && static_cast<unsigned char>(bytes[pos]) == 0xff) ++pos;
  return pos < bytes.size() && static_cast<unsigned char>(bytes[pos]) == 0xd8 ? pos + 1 : 0;
}

// Debian's stb_image (2022) overruns its Huffman tables when a DHT segment declares more than
// 256 codes (later stb versions refuse them): a heap overflow from a 100-byte file. Every DHT
// segment stb could read is checked first: markers are found as stb finds them (FF, fill
// bytes, then the marker; data between segments skipped byte by byte, as stb skips padding and
// entropy-coded data), segments with a length are skipped by it, and each table is read as
// stb reads it (bytes past the end read as 0).
void check_jpeg_huffman_tables(const std::string& bytes, size_t pos, const std::string& path) {
  const size_t size = bytes.size();
  const auto byte = [&](size_t i) -> unsigned { return i < size ? static_cast<unsigned char>(bytes[i]) : 0u; };
  while (pos < size) {
    if (byte(pos) != 0xff) {
      ++pos;
      continue;
    }
    size_t at = pos + 1;
    while (at < size && byte(at) == 0xff) ++at;
    if (at >= size) return;
    const unsigned marker = byte(at);
    pos = at + 1;
    if (marker == 0xd9) return;  // EOI: stb reads no further
    // Stuffed zero, restart markers, SOI, TEM: no length.
    if (marker == 0x00 || (marker >= 0xd0 && marker <= 0xd8) || marker == 0x01) continue;
    const size_t length = (byte(pos) << 8) | byte(pos + 1);
    if (length < 2) continue;  // stb refuses the segment; keep looking anyway
    if (marker == 0xc4) {
      size_t table = pos + 2;
      int64_t left = static_cast<int64_t>(length) - 2;
      while (left > 0) {
        const unsigned header = byte(table);
        if ((header >> 4) > 1 || (header & 15) > 3) break;  // stb refuses the table
        unsigned codes = 0;
        for (size_t i = 1; i <= 16; ++i) codes += byte(table + i);
        if (codes > 256)
          throw_bad_input(fmt::format("{}: corrupt JPEG (Huffman table at byte {} has {} codes, at most 256)", path,
                                      table, codes));
        table += 17 + codes;
        left -= 17 + static_cast<int64_t>(codes);
      }
    }
    pos += length;
  }
}

// stb allocates the decoded image (and, for PNG, its whole uncompressed stream) from the header's
// size before reading any pixel data, and makes up pixels for a JPEG that ends early: a
// 100-byte file declaring 16384x16384 would cost gigabytes and seconds. Refuse sizes the file
// cannot possibly encode, so that what a file makes us allocate is bounded by its own size.
void check_plausible_size(const std::string& bytes, const ImageInfo& info, const std::string& path) {
  const uint64_t width = static_cast<uint64_t>(info.width), height = static_cast<uint64_t>(info.height);
  if (has_png_signature(bytes) && bytes.size() >= 26) {
    // Filtered scanlines: one filter byte plus the packed samples per row (interlaced files
    // have more, so this is a lower bound). Deflate expands at most 1032 times.
    const uint64_t bit_depth = static_cast<unsigned char>(bytes[24]);
    const uint64_t samples = static_cast<unsigned char>(bytes[25]) == 2   ? 3
                             : static_cast<unsigned char>(bytes[25]) == 4 ? 2
                             : static_cast<unsigned char>(bytes[25]) == 6 ? 4
                                                                           : 1;
    const uint64_t stream = height * (1 + (width * samples * bit_depth + 7) / 8);
    if (stream > kMaxDeflateRatio * bytes.size())
      throw_bad_input(fmt::format("{}: a {}x{} PNG needs {} bytes of image data, more than {} compressed bytes can "
                                  "hold (corrupt or truncated file)",
                                  path, width, height, stream, bytes.size()));
  } else if (jpeg_start(bytes) != 0) {
    // Every 8x8 block of the full-resolution component takes at least one bit (its DC code).
    const uint64_t blocks = ((width + 7) / 8) * ((height + 7) / 8);
    if (blocks > 8 * uint64_t{bytes.size()})
      throw_bad_input(fmt::format("{}: a {}x{} JPEG has {} blocks of 8x8 pixels, more than {} bytes can encode "
                                  "(truncated file)",
                                  path, width, height, blocks, bytes.size()));
  }
}

// ---------------------------------------------------------------- PNG through libspng

// What libspng may keep of a file's ancillary chunks (text, colour profiles): one chunk or one
// decompressed text, and all of them together. A zTXt/iTXt "bomb" stops at these; maskgit's
// own metadata is a few kilobytes.
constexpr size_t kMaxPngChunkBytes = size_t{8} << 20;
constexpr size_t kMaxPngChunkCache = size_t{64} << 20;
// Chunks kept (text and the like): libspng's default, which 0.7.3 cannot raise or lower
// (spng_set_option(SPNG_CHUNK_COUNT_LIMIT) refuses any value above the chunks already read).
constexpr int kMaxPngChunks = 1000;

// Owns a libspng context.
class SpngContext {
 public:
  explicit SpngContext(int flags) : context_(spng_ctx_new(flags)) {
    if (context_ == nullptr) throw std::bad_alloc();
  }
  ~SpngContext() { spng_ctx_free(context_); }
  SpngContext(const SpngContext&) = delete;
  SpngContext& operator=(const SpngContext&) = delete;
  spng_ctx* get() const { return context_; }

 private:
  spng_ctx* context_;
};

[[noreturn]] void throw_png_error(const std::string& path, int error) {
  if (error == SPNG_EMEM) throw std::bad_alloc();
  if (error == SPNG_ECHUNK_LIMITS)
    throw_bad_input(fmt::format("{}: PNG metadata over the reader's limits ({} MiB for one chunk or decompressed "
                                "text, {} MiB and {} chunks in all)",
                                path, kMaxPngChunkBytes >> 20, kMaxPngChunkCache >> 20, kMaxPngChunks));
  throw_bad_input(fmt::format("{}: corrupt PNG ({})", path, spng_strerror(error)));
}

// Points a decoder at `bytes` (which must outlive it): every chunk's CRC is checked, ancillary
// chunks too (spng's default drops those silently), and sizes and chunk memory are bounded
// before anything is allocated.
void open_png(const SpngContext& png, const std::string& bytes, const std::string& path) {
  int error = spng_set_crc_action(png.get(), SPNG_CRC_ERROR, SPNG_CRC_ERROR);
  if (error == 0) error = spng_set_image_limits(png.get(), kMaxImageSide, kMaxImageSide);
  if (error == 0) error = spng_set_chunk_limits(png.get(), kMaxPngChunkBytes, kMaxPngChunkCache);
  if (error == 0) error = spng_set_png_buffer(png.get(), bytes.data(), bytes.size());
  if (error != 0) throw_png_error(path, error);
}

// How a PNG is decoded: spng's output format and flags, the samples it writes per pixel and
// their width, and how many of them (the first `info.channels`) the image keeps.
struct PngLayout {
  ImageInfo info;
  int format = 0;
  int flags = 0;
  int decoded_channels = 0;
  bool sixteen_bit = false;
};

// Reads a PNG's header and the chunks before its image data (their CRCs checked) and picks the
// decoding. Channels are the file's own: grey 1, grey+alpha 2, RGB or palette 3, RGBA 4; a
// colour key (tRNS on grey, RGB or palette) adds an alpha channel, so that the transparent
// pixels are composited away later instead of keeping the colour under the key. 16-bit samples
// keep their precision.
PngLayout probe_png(const SpngContext& png, const std::string& path) {
  spng_ihdr header{};
  int error = spng_get_ihdr(png.get(), &header);
  if (error != 0) throw_png_error(path, error);
  if (header.width == 0 || header.height == 0 || header.width > kMaxImageSide || header.height > kMaxImageSide)
    throw_size_out_of_range(path, header.width, header.height);
  spng_trns transparency{};
  error = spng_get_trns(png.get(), &transparency);
  if (error != 0 && error != SPNG_ECHUNKAVAIL) throw_png_error(path, error);
  const bool keyed = error == 0;
  const bool deep = header.bit_depth == 16;
  PngLayout layout;
  layout.info.width = static_cast<int>(header.width);
  layout.info.height = static_cast<int>(header.height);
  switch (header.color_type) {
    case SPNG_COLOR_TYPE_GRAYSCALE:
      // spng converts grey to G8/GA8 (1..8 bits) or GA16 (16 bits) only.
      layout.format = deep ? SPNG_FMT_GA16 : keyed ? SPNG_FMT_GA8 : SPNG_FMT_G8;
      layout.decoded_channels = deep || keyed ? 2 : 1;
      layout.info.channels = keyed ? 2 : 1;
      break;
    case SPNG_COLOR_TYPE_TRUECOLOR:
      layout.format = keyed ? (deep ? SPNG_FMT_RGBA16 : SPNG_FMT_RGBA8) : SPNG_FMT_PNG;
      layout.decoded_channels = layout.info.channels = keyed ? 4 : 3;
      break;
    case SPNG_COLOR_TYPE_INDEXED:  // palette entries are 8-bit
      layout.format = keyed ? SPNG_FMT_RGBA8 : SPNG_FMT_RGB8;
      layout.decoded_channels = layout.info.channels = keyed ? 4 : 3;
      break;
    case SPNG_COLOR_TYPE_GRAYSCALE_ALPHA:
      layout.format = SPNG_FMT_PNG;
      layout.decoded_channels = layout.info.channels = 2;
      break;
    case SPNG_COLOR_TYPE_TRUECOLOR_ALPHA:
      layout.format = SPNG_FMT_PNG;
      layout.decoded_channels = layout.info.channels = 4;
      break;
    default:  // spng_get_ihdr refuses other colour types
      throw_bad_input(fmt::format("{}: corrupt PNG (colour type {})", path, header.color_type));
  }
  layout.flags = keyed ? SPNG_DECODE_TRNS : 0;
  layout.sixteen_bit = deep;  // palettes (RGB8, RGBA8) are never 16-bit
  return layout;
}

torch::Tensor decode_png(const SpngContext& png, const PngLayout& layout, const std::string& path) {
  const int64_t height = layout.info.height, width = layout.info.width;
  const int64_t sample_bytes = layout.sixteen_bit ? 2 : 1;
  size_t size = 0;
  int error = spng_decoded_image_size(png.get(), layout.format, &size);
  if (error != 0) throw_png_error(path, error);
  if (size != static_cast<size_t>(height * width * layout.decoded_channels * sample_bytes))
    throw_bad_input(fmt::format("{}: corrupt PNG (decoded size {} bytes for a {}x{} image)", path, size, width, height));
  // Decoded straight into the tensor; 16-bit samples are host-endian and read as int16.
  torch::Tensor samples = torch::empty({height, width, layout.decoded_channels},
                                       layout.sixteen_bit ? torch::kInt16 : torch::kUInt8);
  error = spng_decode_image(png.get(), samples.data_ptr(), size, layout.format, layout.flags);
  // The chunks after the image data, up to IEND: the last IDAT's CRC is checked there too.
  if (error == 0) error = spng_decode_chunks(png.get());
  if (error != 0) throw_png_error(path, error);
  samples = samples.narrow(2, 0, layout.info.channels).permute({2, 0, 1});
  if (!layout.sixteen_bit) return samples.to(torch::kFloat32).div_(255.0f).contiguous();
  return samples.to(torch::kInt32).bitwise_and_(0xffff).to(torch::kFloat32).div_(65535.0f).contiguous();
}

// ---------------------------------------------------------------- JPEG (and anything else) through stb

ImageInfo probe_stb(const std::string& bytes, const std::string& path) {
  // stb takes an int length; anything near that is far past kMaxImageSide anyway.
  if (bytes.size() > static_cast<size_t>(INT_MAX))
    throw_bad_input(fmt::format("{}: file is too large to be an image ({} bytes)", path, bytes.size()));
  if (const size_t start = jpeg_start(bytes)) check_jpeg_huffman_tables(bytes, start, path);
  ImageInfo info;
  if (!stbi_info_from_memory(as_bytes(bytes), static_cast<int>(bytes.size()), &info.width, &info.height,
                             &info.channels))
    throw_bad_input(fmt::format("{}: not a PNG or JPEG image ({})", path, stbi_failure_reason()));
  if (info.width <= 0 || info.height <= 0 || info.width > kMaxImageSide || info.height > kMaxImageSide)
    throw_size_out_of_range(path, info.width, info.height);
  if (info.channels < 1 || info.channels > 4)
    throw_bad_input(fmt::format("{}: unsupported channel count {}", path, info.channels));
  check_plausible_size(bytes, info, path);
  return info;
}

// Checks a PNG's layout before libspng reads it: the size in IHDR (named in the message), every
// chunk inside the file, IEND present. Returns how many text chunks (tEXt, zTXt, iTXt) it has.
size_t check_png_structure(const std::string& bytes, const std::string& path) {
  if (bytes.size() >= 24 && bytes.compare(12, 4, "IHDR") == 0) {
    const uint32_t width = read_u32(bytes, 16);
    const uint32_t height = read_u32(bytes, 20);
    if (width == 0 || height == 0 || width > kMaxImageSide || height > kMaxImageSide)
      throw_size_out_of_range(path, width, height);
  }
  size_t text_chunks = 0;
  const bool complete = walk_png_chunks(bytes, path, [&](const std::string& type, size_t, uint32_t) {
    text_chunks += type == "tEXt" || type == "zTXt" || type == "iTXt";
  });
  if (!complete) throw_bad_input(fmt::format("{}: truncated PNG (no IEND chunk)", path));
  return text_chunks;
}

// A PNG opened, checked and probed, ready to decode.
struct OpenPng {
  SpngContext png{0};
  PngLayout layout;
};

void open_and_probe_png(OpenPng& open, const std::string& bytes, const std::string& path) {
  check_png_structure(bytes, path);
  open_png(open.png, bytes, path);
  open.layout = probe_png(open.png, path);
  check_plausible_size(bytes, open.layout.info, path);
}

ImageInfo probe_bytes(const std::string& bytes, const std::string& path) {
  if (!has_png_signature(bytes)) return probe_stb(bytes, path);
  OpenPng open;
  open_and_probe_png(open, bytes, path);
  return open.layout.info;
}

// ---------------------------------------------------------------- PNG text chunks

// PNG keywords: 1..79 printable Latin-1 characters, no leading, trailing or doubled spaces.
bool valid_png_keyword(const std::string& keyword) {
  if (keyword.empty() || keyword.size() > 79) return false;
  if (keyword.front() == ' ' || keyword.back() == ' ' || keyword.find("  ") != std::string::npos) return false;
  for (const char c : keyword) {
    const auto u = static_cast<unsigned char>(c);
    if (!((u >= 32 && u <= 126) || u >= 161)) return false;
  }
  return true;
}

std::string latin1_to_utf8(const std::string& latin1) {
  std::string utf8;
  utf8.reserve(latin1.size());
  for (const char c : latin1) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x80) {
      utf8.push_back(c);
    } else {
      utf8.push_back(static_cast<char>(0xc0 | (u >> 6)));
      utf8.push_back(static_cast<char>(0x80 | (u & 0x3f)));
    }
  }
  return utf8;
}

// UTF-8 text of code points U+0000..U+00FF as Latin-1 bytes, or nothing when it holds others
// (or is not UTF-8).
std::optional<std::string> utf8_to_latin1(const std::string& utf8) {
  std::string latin1;
  for (size_t i = 0; i < utf8.size(); ++i) {
    const auto u = static_cast<unsigned char>(utf8[i]);
    if (u < 0x80) {
      latin1.push_back(utf8[i]);
      continue;
    }
    if ((u != 0xc2 && u != 0xc3) || i + 1 >= utf8.size()) return std::nullopt;
    const auto next = static_cast<unsigned char>(utf8[i + 1]);
    if ((next & 0xc0) != 0x80) return std::nullopt;
    latin1.push_back(static_cast<char>(((u & 0x03) << 6) | (next & 0x3f)));
    ++i;
  }
  return latin1;
}

// An uncompressed iTXt chunk's data: keyword (Latin-1), NUL, compression flag 0, method 0, an
// empty language tag and an empty translated keyword (each NUL-terminated), then UTF-8 text.
std::string itxt_data(const std::string& latin1_keyword, const std::string& text) {
  std::string data = latin1_keyword;
  data.append(std::string(5, '\0'));
  data += text;
  return data;
}

// A parsed output pattern: prefix, one optional integer conversion, suffix ("%%" already
// turned into "%").
struct OutputPattern {
  std::string prefix;
  std::string suffix;
  bool has_conversion = false;
  bool zero_pad = false;
  int width = 0;
};

// Returns the parsed pattern, or sets `problem` to why it is not acceptable.
std::optional<OutputPattern> parse_output_pattern(const std::string& pattern, std::string& problem) {
  OutputPattern parsed;
  for (size_t i = 0; i < pattern.size(); ++i) {
    std::string& out = parsed.has_conversion ? parsed.suffix : parsed.prefix;
    if (pattern[i] != '%') {
      out.push_back(pattern[i]);
      continue;
    }
    if (i + 1 < pattern.size() && pattern[i + 1] == '%') {
      out.push_back('%');
      ++i;
      continue;
    }
    size_t j = i + 1;
    bool zero_pad = false;
    while (j < pattern.size() && pattern[j] == '0') {
      zero_pad = true;
      ++j;
    }
    int width = 0;
    while (j < pattern.size() && std::isdigit(static_cast<unsigned char>(pattern[j]))) {
      width = width * 10 + (pattern[j] - '0');
      if (width > 64) {
        problem = "the field width is too large (at most 64)";
        return std::nullopt;
      }
      ++j;
    }
    if (j >= pattern.size()) {
      problem = "it ends in an incomplete % conversion (write %% for a literal percent sign)";
      return std::nullopt;
    }
    if (pattern[j] != 'd' && pattern[j] != 'i') {
      problem = fmt::format("\"{}\" is not an integer conversion (use %d, %5d or %05d; %% for a literal %)",
                            pattern.substr(i, j - i + 1));
      return std::nullopt;
    }
    if (parsed.has_conversion) {
      problem = "it has more than one % conversion (only one %d is allowed)";
      return std::nullopt;
    }
    parsed.has_conversion = true;
    parsed.zero_pad = zero_pad;
    parsed.width = width;
    i = j;
  }
  return parsed;
}

}  // namespace

ImageInfo probe_image(const std::string& path) { return probe_bytes(read_image_file(path), path); }

ImageInfo probe_image_bytes(const std::string& bytes, const std::string& source) {
  return probe_bytes(bytes, source);
}

torch::Tensor read_image(const std::string& path) { return decode_image(read_image_file(path), path); }

torch::Tensor decode_image(const std::string& bytes, const std::string& path) {
  if (has_png_signature(bytes)) {
    OpenPng open;
    open_and_probe_png(open, bytes, path);
    return decode_png(open.png, open.layout, path);
  }
  const ImageInfo info = probe_stb(bytes, path);
  int width = 0;
  int height = 0;
  int stored_channels = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
      stbi_load_from_memory(as_bytes(bytes), static_cast<int>(bytes.size()), &width, &height, &stored_channels,
                            info.channels),
      stbi_image_free);
  if (!pixels) throw_bad_input(fmt::format("{}: corrupt image ({})", path, stbi_failure_reason()));
  // from_blob does not own the pixels; the float conversion below copies them out.
  return torch::from_blob(pixels.get(), {height, width, info.channels}, torch::kUInt8)
      .permute({2, 0, 1})
      .to(torch::kFloat32)
      .div_(255.0f)
      .contiguous();
}

torch::Tensor convert_channels(const torch::Tensor& image, int channels) {
  if (channels != 1 && channels != 3)
    throw std::invalid_argument(fmt::format("convert_channels: channels must be 1 or 3, not {}", channels));
  if (image.dim() != 3 && image.dim() != 4)
    throw std::invalid_argument(
        fmt::format("convert_channels: expected [C,H,W] or [N,C,H,W], got {} dimensions", image.dim()));
  const bool batched = image.dim() == 4;
  const int64_t axis = batched ? 1 : 0;
  const int64_t have = image.size(axis);
  if (have < 1 || have > 4)
    throw std::invalid_argument(fmt::format("convert_channels: {} channels is not an image", have));
  // Alpha is composited over black (premultiplied): a transparent pixel is black, never the
  // colour an editor left hidden under it.
  const torch::Tensor color =
      (have == 2 || have == 4) ? image.narrow(axis, 0, have - 1) * image.narrow(axis, have - 1, 1) : image;
  const int64_t color_channels = color.size(axis);
  if (color_channels == channels) return color.contiguous();
  if (channels == 3) {
    const std::vector<int64_t> shape = batched ? std::vector<int64_t>{-1, 3, -1, -1} : std::vector<int64_t>{3, -1, -1};
    return color.expand(shape).contiguous();
  }
  const std::vector<int64_t> shape = batched ? std::vector<int64_t>{1, 3, 1, 1} : std::vector<int64_t>{3, 1, 1};
  const torch::Tensor luma = torch::tensor({0.299f, 0.587f, 0.114f}).to(color.options()).view(shape);
  return (color * luma).sum(axis, /*keepdim=*/true);
}

torch::Tensor read_image_as(const std::string& path, int channels, int expected_width, int expected_height) {
  torch::Tensor image = read_image(path);
  const int64_t height = image.size(1);
  const int64_t width = image.size(2);
  if ((expected_width > 0 && width != expected_width) || (expected_height > 0 && height != expected_height))
    throw_bad_input(fmt::format("{}: image is {}x{}, expected {}x{}", path, width, height,
                                expected_width > 0 ? expected_width : width,
                                expected_height > 0 ? expected_height : height));
  return convert_channels(image, channels);
}

void write_png(const std::string& path, const torch::Tensor& image, const std::map<std::string, std::string>& text) {
  torch::Tensor pixels = image.detach();
  if (pixels.dim() == 4 && pixels.size(0) == 1) pixels = pixels[0];
  if (pixels.dim() != 3 || !(pixels.size(0) == 1 || pixels.size(0) == 3 || pixels.size(0) == 4))
    throw std::invalid_argument(
        fmt::format("write_png({}): expected a [C,H,W] image with C = 1, 3 or 4, got shape {}", path,
                    fmt::join(pixels.sizes().vec(), "x")));
  const int64_t height = pixels.size(1);
  const int64_t width = pixels.size(2);
  if (width < 1 || height < 1 || width > kMaxImageSide || height > kMaxImageSide)
    throw std::invalid_argument(fmt::format("write_png({}): image size {}x{} is out of range", path, width, height));
  // Each entry becomes an uncompressed iTXt chunk: the keyword in Latin-1 (as PNG requires),
  // the text in UTF-8, so that other readers see the same characters.
  std::vector<std::string> chunk_data;
  for (const auto& [keyword, value] : text) {
    const std::optional<std::string> latin1 = utf8_to_latin1(keyword);
    if (!latin1 || !valid_png_keyword(*latin1))
      throw std::invalid_argument(fmt::format(
          "write_png({}): \"{}\" is not a valid PNG keyword (1..79 printable Latin-1 characters in UTF-8, no "
          "leading, trailing or doubled spaces)",
          path, keyword));
    if (value.find('\0') != std::string::npos)
      throw std::invalid_argument(fmt::format("write_png({}): text for \"{}\" contains a NUL byte", path, keyword));
    if (!is_valid_utf8(value))
      throw std::invalid_argument(fmt::format("write_png({}): text for \"{}\" is not valid UTF-8", path, keyword));
    chunk_data.push_back(itxt_data(*latin1, value));
  }

  const int channels = static_cast<int>(pixels.size(0));
  // NaN would make the uint8 conversion undefined; black is the least surprising stand-in.
  const torch::Tensor bytes = pixels.to(torch::kCPU, torch::kFloat32)
                                  .nan_to_num(0.0)
                                  .clamp(0.0, 1.0)
                                  .mul(255.0)
                                  .round()
                                  .to(torch::kUInt8)
                                  .permute({1, 2, 0})
                                  .contiguous();
  // The text chunks are handed to spng as chunks to write right after IHDR, where readers that
  // stop early (thumbnailers, `file`) still see them; spng frames them (length, CRC). Not
  // spng_set_text: libspng 0.7 refuses an empty text. spng's settings are fixed (zlib's
  // default level, adaptive filters), so the same pixels and text give the same bytes.
  std::vector<spng_unknown_chunk> chunks(chunk_data.size());
  for (size_t i = 0; i < chunk_data.size(); ++i) {
    std::memcpy(chunks[i].type, "iTXt", 4);
    chunks[i].length = chunk_data[i].size();
    chunks[i].data = chunk_data[i].data();
    chunks[i].location = SPNG_AFTER_IHDR;
  }
  SpngContext encoder(SPNG_CTX_ENCODER);
  spng_ihdr header{};
  header.width = static_cast<uint32_t>(width);
  header.height = static_cast<uint32_t>(height);
  header.bit_depth = 8;
  header.color_type = channels == 1   ? SPNG_COLOR_TYPE_GRAYSCALE
                      : channels == 3 ? SPNG_COLOR_TYPE_TRUECOLOR
                                      : SPNG_COLOR_TYPE_TRUECOLOR_ALPHA;
  int error = spng_set_option(encoder.get(), SPNG_ENCODE_TO_BUFFER, 1);
  if (error == 0) error = spng_set_ihdr(encoder.get(), &header);
  if (error == 0 && !chunks.empty())
    error = spng_set_unknown_chunks(encoder.get(), chunks.data(), static_cast<uint32_t>(chunks.size()));
  if (error == 0)
    error = spng_encode_image(encoder.get(), bytes.data_ptr(), static_cast<size_t>(bytes.numel()), SPNG_FMT_PNG,
                              SPNG_ENCODE_FINALIZE);
  size_t size = 0;
  std::unique_ptr<void, void (*)(void*)> buffer(error == 0 ? spng_get_png_buffer(encoder.get(), &size, &error)
                                                           : nullptr,
                                                std::free);
  if (error != 0 || !buffer) throw_io_error(fmt::format("{}: cannot encode PNG ({})", path, spng_strerror(error)));
  const std::string png(static_cast<const char*>(buffer.get()), size);
  // write_file_atomic makes missing folders (out/%05d.png names one the user expects).
  write_file_atomic(path, png);
}

torch::Tensor tile_images(const torch::Tensor& images, int64_t columns, int64_t padding, int64_t scale) {
  if (images.dim() != 4 || images.size(0) == 0) throw std::invalid_argument("tile_images: expected a non-empty [N,C,H,W] batch");
  if (columns < 1 || padding < 0 || scale < 1) throw std::invalid_argument("tile_images: bad layout");
  torch::Tensor cells = images.detach().to(torch::kCPU, torch::kFloat32);
  if (scale > 1) cells = cells.repeat_interleave(scale, 2).repeat_interleave(scale, 3);
  const int64_t count = cells.size(0), channels = cells.size(1), height = cells.size(2), width = cells.size(3);
  const int64_t rows = (count + columns - 1) / columns;
  torch::Tensor canvas = torch::ones({channels, rows * (height + padding) + padding, columns * (width + padding) + padding});
  for (int64_t i = 0; i < count; ++i) {
    const int64_t top = padding + (i / columns) * (height + padding);
    const int64_t left = padding + (i % columns) * (width + padding);
    canvas.slice(1, top, top + height).slice(2, left, left + width).copy_(cells[i]);
  }
  return canvas;
}

std::map<std::string, std::string> read_png_text(const std::string& path) {
  return parse_png_text(read_image_file(path), path);
}

std::map<std::string, std::string> parse_png_text(const std::string& bytes, const std::string& path) {
  if (!has_png_signature(bytes)) throw_bad_input(fmt::format("{}: not a PNG file (bad signature)", path));
  const size_t text_chunks = check_png_structure(bytes, path);
  SpngContext png(0);
  open_png(png, bytes, path);
  // Text may follow the image data, and spng reads the chunks after it once the image has been
  // read: decode it a scanline at a time into one row (every CRC on the way is checked).
  size_t size = 0;
  int error = spng_decode_image(png.get(), nullptr, 0, SPNG_FMT_RAW, SPNG_DECODE_PROGRESSIVE);
  if (error == 0) error = spng_decoded_image_size(png.get(), SPNG_FMT_RAW, &size);
  if (error != 0) throw_png_error(path, error);
  spng_ihdr header{};
  error = spng_get_ihdr(png.get(), &header);
  if (error != 0) throw_png_error(path, error);
  std::vector<unsigned char> row(size / header.height);
  do error = spng_decode_scanline(png.get(), row.data(), row.size());
  while (error == 0);
  if (error != SPNG_EOI) throw_png_error(path, error);

  uint32_t count = 0;
  error = spng_get_text(png.get(), nullptr, &count);
  if (error == SPNG_ECHUNKAVAIL) count = 0;
  else if (error != 0) throw_png_error(path, error);
  // spng drops a text chunk it cannot read (bad keyword, layout or compressed stream) without a
  // word: metadata silently missing would be worse than a refusal.
  if (count != text_chunks)
    throw_bad_input(fmt::format("{}: corrupt PNG ({} of its {} text chunks are malformed: keyword, layout or "
                                "compressed text)",
                                path, text_chunks - count, text_chunks));
  std::vector<spng_text> chunks(count);
  if (count > 0) {
    error = spng_get_text(png.get(), chunks.data(), &count);
    if (error != 0) throw_png_error(path, error);
  }
  // Keywords are Latin-1 in every kind of chunk; tEXt and zTXt text is Latin-1 too, iTXt text
  // UTF-8. A keyword that repeats keeps its first text: the chunks maskgit writes come first.
  std::map<std::string, std::string> text;
  for (const spng_text& chunk : chunks) {
    const std::string keyword = latin1_to_utf8(chunk.keyword);
    std::string value(chunk.text, chunk.length);
    if (chunk.type == SPNG_ITXT) {
      if (!is_valid_utf8(value))
        throw_bad_input(fmt::format("{}: corrupt PNG (the iTXt text of \"{}\" is not valid UTF-8)", path, keyword));
    } else {
      value = latin1_to_utf8(value);
    }
    text.emplace(keyword, std::move(value));
  }
  return text;
}

std::string format_output_path(const std::string& pattern, int64_t index) {
  std::string problem;
  const std::optional<OutputPattern> parsed = parse_output_pattern(pattern, problem);
  if (!parsed) throw InvalidArgument("output", fmt::format("pattern \"{}\" is not valid: {}", pattern, problem));
  if (!parsed->has_conversion) return parsed->prefix;
  // printf semantics: the sign comes before zero padding ("%05d" of -3 is "-0003").
  const std::string digits = std::to_string(index < 0 ? -static_cast<uint64_t>(index) : static_cast<uint64_t>(index));
  const std::string sign = index < 0 ? "-" : "";
  const size_t used = sign.size() + digits.size();
  const size_t pad = static_cast<size_t>(parsed->width) > used ? static_cast<size_t>(parsed->width) - used : 0;
  const std::string number =
      parsed->zero_pad ? sign + std::string(pad, '0') + digits : std::string(pad, ' ') + sign + digits;
  return parsed->prefix + number + parsed->suffix;
}

void validate_output_pattern(const std::string& pattern, int64_t count) {
  if (pattern.empty()) throw InvalidArgument("output", "the output path is empty");
  std::string problem;
  const std::optional<OutputPattern> parsed = parse_output_pattern(pattern, problem);
  if (!parsed) throw InvalidArgument("output", fmt::format("pattern \"{}\" is not valid: {}", pattern, problem));
  if (count > 1 && !parsed->has_conversion)
    throw InvalidArgument("output", fmt::format("pattern \"{}\" needs one %d conversion to write {} files", pattern,
                                                count));
}

}  // namespace maskgit
