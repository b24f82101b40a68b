#pragma once
// Outpainting geometry: where the input image sits on a larger canvas, and the canvas as the
// decoder sees it (known pixels where the image is, to be generated everywhere else).
#include <torch/torch.h>

#include "io/image.h"

#include <string>

namespace maskgit {

// The largest canvas side accepted, in pixels: the largest PNG side the tools write.
constexpr int64_t kMaxCanvasSide = kMaxImageSide;

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
// `factor` pixels. Error(usage) when a margin is negative or all are 0.
CanvasPlacement placement_from_margins(int64_t width, int64_t height, const Margins& margins, int64_t factor);

// Places the image on a canvas of the given size at the given offset. Error(usage) naming
// --canvas / --offset when the image does not fit inside or the canvas adds nothing.
CanvasPlacement placement_on_canvas(int64_t width, int64_t height, int64_t canvas_width, int64_t canvas_height,
                                    int64_t offset_x, int64_t offset_y);

// "WxH" and "X,Y" parsers; Error(usage) naming `flag`.
void parse_size(const std::string& text, const std::string& flag, int64_t& width, int64_t& height);
void parse_point(const std::string& text, const std::string& flag, int64_t& x, int64_t& y);

struct PlacedImages {
  // [N, C, canvas_height, canvas_width]: the images, with the area outside them filled by
  // repeating their edge pixels (those cells are regenerated anyway; replication keeps the
  // encoder's view of the image's own border cells close to that of the image alone).
  torch::Tensor pixels;
  torch::Tensor known;  // [canvas_height, canvas_width] bool: true where the image is
};

PlacedImages place_on_canvas(const torch::Tensor& images, const CanvasPlacement& placement);

}  // namespace maskgit
