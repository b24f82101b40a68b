#include "io/image.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/stat.h>
#include <zlib.h>

#include <cctype>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <system_error>

#include "common/error.h"
#include "io/atomic_file.h"

// Static linkage keeps stb's symbols private to this file, so another translation unit (a test,
// another tool) can carry its own copy of stb without duplicate-symbol clashes.
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_NO_STDIO
#define STBI_FAILURE_USERMSG
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
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
// garbage that yields garbage pixels, fixed upstream in 2.28 with range checks. Its PNG reader
// copies an empty first IDAT chunk with memcpy(NULL, p, 0). UBSan's checks for those kinds
// are off for stb's functions only (clang: the fuzz/ build); every other check stays on.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((no_sanitize("signed-integer-overflow", "shift", "nonnull-attribute"))), \
                             apply_to = function)
#endif
#include <stb_image.h>
#include <stb_image_write.h>
#if defined(__clang__)
#pragma clang attribute pop
#endif
#pragma GCC diagnostic pop

namespace maskgit {
namespace {

constexpr unsigned char kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
// Signature (8) + IHDR chunk (length 4, type 4, 13 data bytes, CRC 4).
constexpr size_t kPngHeaderEnd = 8 + 25;
// Deflate's largest expansion: 258 bytes from a 2-bit length/distance code pair.
constexpr uint64_t kMaxDeflateRatio = 1032;

const stbi_uc* as_bytes(const std::string& bytes) { return reinterpret_cast<const stbi_uc*>(bytes.data()); }

uint32_t read_u32(const std::string& bytes, size_t offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + offset);
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

void append_u32(std::string& out, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((value >> shift) & 0xff));
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

ImageInfo probe_bytes(const std::string& bytes, const std::string& path) {
  // stb takes an int length; anything near that is far past kMaxImageSide anyway.
  if (bytes.size() > static_cast<size_t>(INT_MAX))
    throw_bad_input(fmt::format("{}: file is too large to be an image ({} bytes)", path, bytes.size()));
  // stb reports a zero-sized PNG only as "Corrupt PNG"; reading IHDR ourselves names the size.
  if (has_png_signature(bytes) && bytes.size() >= 24 && bytes.compare(12, 4, "IHDR") == 0) {
    const uint32_t width = read_u32(bytes, 16);
    const uint32_t height = read_u32(bytes, 20);
    if (width == 0 || height == 0 || width > kMaxImageSide || height > kMaxImageSide)
      throw_size_out_of_range(path, width, height);
  }
  // stb grows its buffer to a chunk's declared length before reading it: a length past the
  // end of the file would cost up to 2 GiB.
  bool colour_key = false;  // a grey or RGB PNG whose tRNS chunk makes one colour transparent
  if (has_png_signature(bytes))
    walk_png_chunks(bytes, path, [&](const std::string& type, size_t, uint32_t) { colour_key |= type == "tRNS"; });
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
  // stb reports such a file without its alpha, and decodes it so when asked for that count:
  // ask for the alpha too, or the transparent pixels would keep the colour under the key.
  const int colour_type = bytes.size() > 25 ? static_cast<unsigned char>(bytes[25]) : -1;
  if (colour_key && (colour_type == 0 || colour_type == 2) && (info.channels == 1 || info.channels == 3))
    info.channels += 1;
  return info;
}

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

std::string text_chunk(const std::string& keyword, const std::string& text) {
  std::string body = "tEXt" + keyword;
  body.push_back('\0');
  body += text;
  std::string chunk;
  append_u32(chunk, static_cast<uint32_t>(body.size() - 4));
  chunk += body;
  append_u32(chunk, static_cast<uint32_t>(
                        crc32(0L, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()))));
  return chunk;
}

void append_to_string(void* context, void* data, int size) {
  static_cast<std::string*>(context)->append(static_cast<const char*>(data), static_cast<size_t>(size));
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
  const ImageInfo info = probe_bytes(bytes, path);
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
  for (const auto& [keyword, value] : text) {
    if (!valid_png_keyword(keyword))
      throw std::invalid_argument(fmt::format("write_png({}): \"{}\" is not a valid PNG keyword", path, keyword));
    if (value.find('\0') != std::string::npos)
      throw std::invalid_argument(fmt::format("write_png({}): text for \"{}\" contains a NUL byte", path, keyword));
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
  std::string png;
  if (!stbi_write_png_to_func(append_to_string, &png, static_cast<int>(width), static_cast<int>(height), channels,
                              bytes.data_ptr(), static_cast<int>(width) * channels))
    throw_io_error(fmt::format("{}: cannot encode PNG", path));
  if (!text.empty()) {
    // Readers that stop early (thumbnailers, `file`) only see chunks placed before the image data.
    if (!has_png_signature(png) || png.size() < kPngHeaderEnd || png.compare(12, 4, "IHDR") != 0)
      throw_io_error(fmt::format("{}: PNG encoder produced an unexpected header", path));
    std::string chunks;
    for (const auto& [keyword, value] : text) chunks += text_chunk(keyword, value);
    png.insert(kPngHeaderEnd, chunks);
  }
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
  std::map<std::string, std::string> text;
  const bool complete = walk_png_chunks(bytes, path, [&](const std::string& type, size_t offset, uint32_t length) {
    if (type != "tEXt") return;
    const std::string body = bytes.substr(offset, length);
    const size_t zero = body.find('\0');
    if (zero == std::string::npos || zero == 0)
      throw_bad_input(fmt::format("{}: corrupt PNG (tEXt chunk without a keyword)", path));
    text[body.substr(0, zero)] = body.substr(zero + 1);
  });
  if (!complete) throw_bad_input(fmt::format("{}: truncated PNG (no IEND chunk)", path));
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
