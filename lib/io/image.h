#pragma once
// Image files in and out. Pixels are float tensors in [0, 1]: one image is [C, H, W],
// a batch is [N, C, H, W]. Reads PNG (libspng: every chunk's CRC checked; any bit depth, palettes)
// and JPEG (stb_image) with grey, grey+alpha, RGB or RGBA pixels; writes 8-bit PNG, atomically,
// optionally with UTF-8 iTXt text chunks that carry generation settings.
#include <torch/torch.h>

#include <map>
#include <string>

namespace maskgit {

// Largest side accepted on read; larger files are rejected as absurd, not allocated.
constexpr int kMaxImageSide = 16384;

struct ImageInfo {
  int width = 0;
  int height = 0;
  int channels = 0;  // as stored: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA
};

// Header-only probe. Throws Error(bad_input) naming the file for missing/unreadable files,
// unsupported formats, and zero or absurd sizes.
ImageInfo probe_image(const std::string& path);

// Reads an image as [C, H, W] float in [0,1] with C the file's own channel count (1..4): a
// palette is RGB, and a PNG colour key (tRNS on grey, RGB or a palette) adds an alpha channel.
// 16-bit PNG samples keep their precision (v / 65535). Same errors as probe_image, and
// Error(bad_input) naming the file for a corrupt PNG (a CRC that does not match, a damaged
// deflate stream, truncated image data).
torch::Tensor read_image(const std::string& path);

// probe_image and read_image for a file's bytes already in memory; `source` (a path) names
// the input in the messages, as the path does above.
ImageInfo probe_image_bytes(const std::string& bytes, const std::string& source);
torch::Tensor decode_image(const std::string& bytes, const std::string& source);

// Converts a [C, H, W] or [N, C, H, W] image to `channels` (1 or 3). Grey→RGB replicates,
// RGB→grey uses Rec.601 luma, and alpha is composited over black (the background of the
// shipped model's images): a transparent pixel reads as black, never as the colour an editor
// left hidden under it.
torch::Tensor convert_channels(const torch::Tensor& image, int channels);

// Reads an image and converts it to `channels`; if expected_width/height > 0 the size must
// match exactly, otherwise Error(bad_input) says "<path>: image is WxH, expected WxH".
torch::Tensor read_image_as(const std::string& path, int channels, int expected_width = 0,
                            int expected_height = 0);

// Writes a [C, H, W] (C = 1, 3 or 4) image as 8-bit PNG, clamping to [0,1] and rounding.
// `text` entries become uncompressed iTXt chunks right after IHDR, in key order: keyword → text,
// both given in UTF-8; the keyword must be 1..79 printable Latin-1 characters (PNG stores it in
// Latin-1) without leading, trailing or doubled spaces, the text valid UTF-8 without NUL bytes,
// else std::invalid_argument. The same pixels and text give the same bytes. Atomic; missing
// parent folders are created. Throws Error(io_error) naming the path (or the folder) when it
// cannot be written.
void write_png(const std::string& path, const torch::Tensor& image,
               const std::map<std::string, std::string>& text = {});

// Tiles a batch [N, C, H, W] into one picture [C, rows·(H+pad)+pad, columns·(W+pad)+pad] on a
// white background, each image enlarged `scale` times (nearest neighbour) so small images can
// be seen.
torch::Tensor tile_images(const torch::Tensor& images, int64_t columns, int64_t padding = 2, int64_t scale = 1);

// Reads the text chunks of a PNG file (for tests and for reproducing a run from a file):
// keyword → text, both as UTF-8. tEXt (Latin-1), zTXt (compressed Latin-1) and iTXt
// (UTF-8, compressed or not) are all read; a keyword that repeats keeps its first text. The
// whole file is read and checked as read_image does (CRCs, image data; the pixels are not kept):
// Error(bad_input) naming the file for a corrupt or truncated PNG, a malformed text chunk, or
// iTXt text that is not UTF-8.
std::map<std::string, std::string> read_png_text(const std::string& path);
std::map<std::string, std::string> parse_png_text(const std::string& bytes, const std::string& source);

// Expands an output pattern with one printf-style integer conversion (%d, %05d, ...).
// A pattern without a conversion is used as-is when count == 1. InvalidArgument("output") for
// an invalid pattern, or (validate_output_pattern) an empty one, or one without a conversion
// for count > 1. (The tools' prepare_output_pattern, cli/common.h, also checks every path.)
std::string format_output_path(const std::string& pattern, int64_t index);
void validate_output_pattern(const std::string& pattern, int64_t count);

}  // namespace maskgit
