#pragma once
// Image geometry: fitting input images (and their masks) to the model's size (--fit), and
// outpainting canvases: where the input image sits on a larger canvas, and the canvas as the
// decoder sees it (known pixels where the image is, to be generated everywhere else).
#include <torch/torch.h>

#include "io/image.h"

#include <string>

namespace maskgit {

// The largest canvas side accepted, in pixels: the largest PNG side the tools write.
constexpr int64_t kMaxCanvasSide = kMaxImageSide;

// ---- Fitting inputs to the model's size ----

// none: every image at its own size; crop: the centred largest part with the target's aspect
// ratio, resized to the target; resize: the whole image resized to the target (its aspect
// ratio changes).
enum class FitMode { none, crop, resize };

// "none", "crop", "resize"; throws std::invalid_argument otherwise.
FitMode parse_fit_mode(const std::string& text);
const char* fit_mode_name(FitMode mode);

// Where one image size goes: the part of the input kept (in input pixels), then the size it is
// resized to.
struct FitGeometry {
  int64_t crop_x = 0;
  int64_t crop_y = 0;
  int64_t crop_width = 0;
  int64_t crop_height = 0;
  int64_t width = 0;   // the fitted image's size
  int64_t height = 0;

  // True when nothing is cropped or resized from an input_width × input_height image.
  bool is_identity(int64_t input_width, int64_t input_height) const;
};

// The geometry that fits a width × height image to target_width × target_height (for none: the
// image as it is). The crop is centred (the extra pixel of an odd margin on the right/bottom),
// its size rounded to whole pixels, never empty.
FitGeometry fit_geometry(int64_t width, int64_t height, int64_t target_width, int64_t target_height, FitMode mode);

// Images [N, C, H, W] (or one [C, H, W]) in [0, 1] through the geometry: cropped, then resized
// by bilinear interpolation (antialiased when shrinking), clamped to [0, 1]. An identity
// geometry returns the pixels unchanged.
torch::Tensor fit_images(const torch::Tensor& images, const FitGeometry& geometry);

// A pixel mask [H, W] bool (true = regenerate) through the same geometry: a fitted pixel is
// selected when any selected input pixel overlaps its area, so the fitted mask never
// under-covers what the input's mask selects (as the token rule never under-covers pixels).
torch::Tensor fit_pixel_mask(const torch::Tensor& mask, const FitGeometry& geometry);

// ---- Outpainting canvases ----

struct CanvasPlacement {
  int64_t canvas_width = 0;
  int64_t canvas_height = 0;
  int64_t offset_x = 0;  // the image's top-left corner on the canvas
  int64_t offset_y = 0;
};

struct Margins {
  int64_t left = 0;
  int64_t right = 0;
  int64_t top = 0;
  int64_t bottom = 0;
};

// Extends a width × height image by the margins, each rounded up to whole tokens of
// `factor` pixels. InvalidArgument("left", "right", "top" or "bottom") for a margin out of
// range, InvalidArgument("margins") when all are 0 or the canvas would be too large.
CanvasPlacement placement_from_margins(int64_t width, int64_t height, const Margins& margins, int64_t factor);

// Places the image on a canvas of the given size at the given offset. InvalidArgument("canvas"
// or "offset") when the image does not fit inside or the canvas adds nothing. (The tools read
// "WxH" and "X,Y" text with parse_size and parse_point, cli/geometry_args.h.)
CanvasPlacement placement_on_canvas(int64_t width, int64_t height, int64_t canvas_width, int64_t canvas_height,
                                    int64_t offset_x, int64_t offset_y);

struct PlacedImages {
  // [N, C, canvas_height, canvas_width]: the images, with the area outside them filled by
  // repeating their edge pixels (those cells are regenerated anyway; replication keeps the
  // encoder's view of the image's own border cells close to that of the image alone).
  torch::Tensor pixels;
  torch::Tensor known;  // [canvas_height, canvas_width] bool: true where the image is
};

PlacedImages place_on_canvas(const torch::Tensor& images, const CanvasPlacement& placement);

}  // namespace maskgit
