#pragma once
// Editing regions (docs/editing.md §2-§7): from a mask picture or a box to the token mask the
// decoder regenerates, and from the token mask back to a feathered pixel weight for
// compositing the result onto the original pixels.
//
// Pixel masks are [H, W] bool (true = regenerate); token masks are [h, w] bool with
// h = ceil(H / f), w = ceil(W / f) for the tokenizer's downsampling factor f.
#include <torch/torch.h>

#include <string>

namespace maskgit {

struct MaskReadOptions {
  double threshold = 0.5;  // a pixel is regenerated when its value is >= threshold
  bool invert = false;     // regenerate the dark (or transparent) pixels instead
};

// A pixel whose alpha is below this is transparent (for masks and input images alike).
constexpr float kTransparentAlpha = 0.5f;

struct PixelMask {
  torch::Tensor selected;  // [height, width] bool: true = regenerate
  std::string channel;     // what decided: "alpha" or "grey"
};

// Reads a mask picture of exactly width × height pixels. When the file has an alpha channel
// and some pixel is transparent (alpha < kTransparentAlpha), a pixel's value is its alpha (an
// opaque stroke of any colour on a transparent layer regenerates); otherwise its luminance
// (white = regenerate), whatever a translucent pixel here and there. The value is compared
// with options.threshold. Error(bad_input) naming the file for an unreadable picture or another
// size.
PixelMask read_pixel_mask(const std::string& path, int64_t width, int64_t height, const MaskReadOptions& options = {});

// A token is regenerated if any pixel of its f×f cell is, so the token mask never
// under-covers the pixel mask.
torch::Tensor pixel_mask_to_token_mask(const torch::Tensor& pixel_mask, int64_t factor);

// Grows a token mask by `cells` tokens in every direction (rows and columns, like the
// release's box dilation; a rectangle stays a rectangle).
torch::Tensor dilate_token_mask(const torch::Tensor& token_mask, int64_t cells);

struct PixelBox {
  int64_t x = 0;
  int64_t y = 0;
  int64_t width = 0;
  int64_t height = 0;
};

// InvalidArgument("box") when the box is empty or not inside the width × height image. (The
// tools read boxes from "X,Y,W,H" text with parse_box, cli/geometry_args.h.)
void require_box_inside(const PixelBox& box, int64_t width, int64_t height);
// The box as a pixel mask (after require_box_inside).
torch::Tensor box_pixel_mask(const PixelBox& box, int64_t width, int64_t height);

// The release's feathering for an S×S image: a Gaussian blur of radius S/16 − 1 pixels
// (integer division; the shorter side for other shapes), never below 0.
double default_feather_radius(int64_t height, int64_t width);

// The compositing weight [H, W] float: 1 on regenerated token cells, 0 elsewhere, blurred
// by a Gaussian of standard deviation `radius` pixels (0 = hard cell edges). The kernel is
// cut at 3·radius, so pixels further than that from every regenerated cell weigh exactly 0
// and keep the original's value exactly.
torch::Tensor feathered_weight(const torch::Tensor& token_mask, int64_t factor, int64_t height, int64_t width,
                               double radius);

// out = generated·weight + original·(1 − weight) (exactly the original where weight is 0),
// images [..., C, H, W], weight [H, W].
torch::Tensor composite(const torch::Tensor& original, const torch::Tensor& generated, const torch::Tensor& weight);

// The token mask drawn at image size, white = regenerated: [1, H, W] float, usable again as
// a --mask picture.
torch::Tensor token_mask_picture(const torch::Tensor& token_mask, int64_t factor, int64_t height, int64_t width);

}  // namespace maskgit
