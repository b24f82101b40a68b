#include "editing/canvas.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "common/error.h"

namespace maskgit {

namespace F = torch::nn::functional;

namespace {

int64_t round_up(int64_t value, int64_t factor) { return (value + factor - 1) / factor * factor; }

}  // namespace

FitMode parse_fit_mode(const std::string& text) {
  if (text == "none") return FitMode::none;
  if (text == "crop") return FitMode::crop;
  if (text == "resize") return FitMode::resize;
  throw std::invalid_argument(fmt::format("\"{}\" is not none, crop or resize", text));
}

const char* fit_mode_name(FitMode mode) {
  switch (mode) {
    case FitMode::none: return "none";
    case FitMode::crop: return "crop";
    case FitMode::resize: return "resize";
  }
  return "none";
}

bool FitGeometry::is_identity(int64_t input_width, int64_t input_height) const {
  return crop_x == 0 && crop_y == 0 && crop_width == input_width && crop_height == input_height &&
         width == input_width && height == input_height;
}

FitGeometry fit_geometry(int64_t width, int64_t height, int64_t target_width, int64_t target_height, FitMode mode) {
  TORCH_CHECK(width > 0 && height > 0 && target_width > 0 && target_height > 0, "fit_geometry: empty size");
  FitGeometry geometry{0, 0, width, height, width, height};
  if (mode == FitMode::none) return geometry;
  geometry.width = target_width;
  geometry.height = target_height;
  if (mode == FitMode::crop) {
    // Sides below 2^14 (kMaxImageSide): the products stay far inside int64.
    if (width * target_height > height * target_width) {  // wider than the target: keep the full height
      geometry.crop_width = std::clamp<int64_t>((2 * height * target_width + target_height) / (2 * target_height), 1, width);
    } else {
      geometry.crop_height = std::clamp<int64_t>((2 * width * target_height + target_width) / (2 * target_width), 1, height);
    }
    geometry.crop_x = (width - geometry.crop_width) / 2;
    geometry.crop_y = (height - geometry.crop_height) / 2;
  }
  return geometry;
}

torch::Tensor fit_images(const torch::Tensor& images, const FitGeometry& geometry) {
  TORCH_CHECK(images.dim() == 3 || images.dim() == 4, "fit_images: images must be [C, H, W] or [N, C, H, W]");
  const int64_t height = images.size(-2), width = images.size(-1);
  if (geometry.is_identity(width, height)) return images;
  TORCH_CHECK(geometry.crop_x >= 0 && geometry.crop_y >= 0 && geometry.crop_x + geometry.crop_width <= width &&
                  geometry.crop_y + geometry.crop_height <= height,
              "fit_images: the crop is outside the image");
  torch::Tensor batch = images.dim() == 3 ? images.unsqueeze(0) : images;
  batch = batch.slice(2, geometry.crop_y, geometry.crop_y + geometry.crop_height)
              .slice(3, geometry.crop_x, geometry.crop_x + geometry.crop_width)
              .to(torch::kFloat);
  if (geometry.width != geometry.crop_width || geometry.height != geometry.crop_height) {
    const bool shrinking = geometry.width < geometry.crop_width || geometry.height < geometry.crop_height;
    batch = F::interpolate(batch, F::InterpolateFuncOptions()
                                      .size(std::vector<int64_t>{geometry.height, geometry.width})
                                      .mode(torch::kBilinear)
                                      .align_corners(false)
                                      .antialias(shrinking))
                .clamp(0, 1);
  }
  batch = batch.contiguous();
  return images.dim() == 3 ? batch[0] : batch;
}

namespace {

// Along one axis of `length` input pixels resized to `size`: output pixel i covers input
// [i·length/size, (i+1)·length/size); the whole input pixels it touches are [first, last).
void covered_pixels(int64_t length, int64_t size, std::vector<int64_t>& first, std::vector<int64_t>& last) {
  for (int64_t i = 0; i < size; ++i) {
    first.push_back(i * length / size);
    last.push_back(std::min(length, ((i + 1) * length + size - 1) / size));
  }
}

// For each output pixel along `dim`: whether any input pixel it covers is selected (a running
// count, so each output pixel costs two lookups whatever the scale).
torch::Tensor any_covered(const torch::Tensor& mask, int64_t dim, int64_t size) {
  const int64_t length = mask.size(dim);
  std::vector<int64_t> first, last;
  covered_pixels(length, size, first, last);
  torch::Tensor counts = torch::cat({torch::zeros_like(mask.select(dim, 0).unsqueeze(dim), torch::kLong),
                                     mask.to(torch::kLong).cumsum(dim)},
                                    dim);
  const torch::Tensor upto = counts.index_select(dim, torch::tensor(last, torch::kLong));
  const torch::Tensor before = counts.index_select(dim, torch::tensor(first, torch::kLong));
  return (upto - before) > 0;
}

}  // namespace

torch::Tensor fit_pixel_mask(const torch::Tensor& mask, const FitGeometry& geometry) {
  TORCH_CHECK(mask.dim() == 2, "fit_pixel_mask: the mask must be [H, W]");
  const int64_t height = mask.size(0), width = mask.size(1);
  if (geometry.is_identity(width, height)) return mask;
  const torch::Tensor cropped = mask.to(torch::kBool)
                                    .slice(0, geometry.crop_y, geometry.crop_y + geometry.crop_height)
                                    .slice(1, geometry.crop_x, geometry.crop_x + geometry.crop_width);
  return any_covered(any_covered(cropped, 0, geometry.height), 1, geometry.width).contiguous();
}

CanvasPlacement placement_from_margins(int64_t width, int64_t height, const Margins& margins, int64_t factor) {
  const std::pair<const char*, int64_t> named[] = {
      {"left", margins.left}, {"right", margins.right}, {"top", margins.top}, {"bottom", margins.bottom}};
  for (const auto& [argument, value] : named)
    if (value < 0 || value > kMaxCanvasSide)
      throw InvalidArgument(argument, fmt::format("{} is out of range (0 to {} pixels)", value, kMaxCanvasSide));
  if (margins.left + margins.right + margins.top + margins.bottom == 0)
    throw InvalidArgument("margins", "every margin is 0: nothing to outpaint");
  CanvasPlacement placement;
  placement.offset_x = round_up(margins.left, factor);
  placement.offset_y = round_up(margins.top, factor);
  placement.canvas_width = placement.offset_x + width + round_up(margins.right, factor);
  placement.canvas_height = placement.offset_y + height + round_up(margins.bottom, factor);
  if (placement.canvas_width > kMaxCanvasSide || placement.canvas_height > kMaxCanvasSide)
    throw InvalidArgument("margins", fmt::format("the canvas would be {}x{}, more than {} pixels a side",
                                                 placement.canvas_width, placement.canvas_height, kMaxCanvasSide));
  return placement;
}

CanvasPlacement placement_on_canvas(int64_t width, int64_t height, int64_t canvas_width, int64_t canvas_height,
                                    int64_t offset_x, int64_t offset_y) {
  if (canvas_width <= 0 || canvas_height <= 0)
    throw InvalidArgument("canvas", fmt::format("{}x{} is empty", canvas_width, canvas_height));
  if (canvas_width > kMaxCanvasSide || canvas_height > kMaxCanvasSide)
    throw InvalidArgument("canvas", fmt::format("{}x{} is more than {} pixels a side", canvas_width, canvas_height,
                                                kMaxCanvasSide));
  if (offset_x < 0 || offset_y < 0 || offset_x + width > canvas_width || offset_y + height > canvas_height)
    throw InvalidArgument("offset", fmt::format("the {}x{} image at {},{} does not fit inside the {}x{} canvas", width,
                                                height, offset_x, offset_y, canvas_width, canvas_height));
  if (canvas_width == width && canvas_height == height)
    throw InvalidArgument("canvas", fmt::format("{}x{} is the image's own size: nothing to outpaint", canvas_width,
                                                canvas_height));
  return CanvasPlacement{canvas_width, canvas_height, offset_x, offset_y};
}

PlacedImages place_on_canvas(const torch::Tensor& images, const CanvasPlacement& placement) {
  TORCH_CHECK(images.dim() == 4, "place_on_canvas: images must be [N, C, H, W]");
  const int64_t height = images.size(2), width = images.size(3);
  const int64_t right = placement.canvas_width - placement.offset_x - width;
  const int64_t bottom = placement.canvas_height - placement.offset_y - height;
  TORCH_CHECK(placement.offset_x >= 0 && placement.offset_y >= 0 && right >= 0 && bottom >= 0,
              "place_on_canvas: the image does not fit");
  PlacedImages placed;
  placed.pixels = F::pad(images, F::PadFuncOptions({placement.offset_x, right, placement.offset_y, bottom})
                                     .mode(torch::kReplicate));
  placed.known = torch::zeros({placement.canvas_height, placement.canvas_width}, torch::kBool);
  placed.known.slice(0, placement.offset_y, placement.offset_y + height)
      .slice(1, placement.offset_x, placement.offset_x + width)
      .fill_(true);
  return placed;
}

}  // namespace maskgit
