#include "editing/canvas.h"

#include <fmt/format.h>

#include <sstream>

#include "common/error.h"

namespace maskgit {

namespace F = torch::nn::functional;

namespace {

int64_t round_up(int64_t value, int64_t factor) { return (value + factor - 1) / factor * factor; }

}  // namespace

CanvasPlacement placement_from_margins(int64_t width, int64_t height, const Margins& margins, int64_t factor) {
  const std::pair<const char*, int64_t> named[] = {
      {"--left", margins.left}, {"--right", margins.right}, {"--top", margins.top}, {"--bottom", margins.bottom}};
  for (const auto& [flag, value] : named)
    if (value < 0 || value > kMaxCanvasSide)
      throw_usage(fmt::format("{}: {} is out of range (0 to {} pixels)", flag, value, kMaxCanvasSide));
  if (margins.left + margins.right + margins.top + margins.bottom == 0)
    throw_usage("nothing to outpaint: give --left/--right/--top/--bottom or --canvas");
  CanvasPlacement placement;
  placement.offset_x = round_up(margins.left, factor);
  placement.offset_y = round_up(margins.top, factor);
  placement.canvas_width = placement.offset_x + width + round_up(margins.right, factor);
  placement.canvas_height = placement.offset_y + height + round_up(margins.bottom, factor);
  if (placement.canvas_width > kMaxCanvasSide || placement.canvas_height > kMaxCanvasSide)
    throw_usage(fmt::format("--left/--right/--top/--bottom: the canvas would be {}x{}, more than {} pixels a side",
                            placement.canvas_width, placement.canvas_height, kMaxCanvasSide));
  return placement;
}

CanvasPlacement placement_on_canvas(int64_t width, int64_t height, int64_t canvas_width, int64_t canvas_height,
                                    int64_t offset_x, int64_t offset_y) {
  if (canvas_width <= 0 || canvas_height <= 0)
    throw_usage(fmt::format("--canvas: {}x{} is empty", canvas_width, canvas_height));
  if (canvas_width > kMaxCanvasSide || canvas_height > kMaxCanvasSide)
    throw_usage(fmt::format("--canvas: {}x{} is more than {} pixels a side", canvas_width, canvas_height,
                            kMaxCanvasSide));
  if (offset_x < 0 || offset_y < 0 || offset_x + width > canvas_width || offset_y + height > canvas_height)
    throw_usage(fmt::format("--offset: the {}x{} image at {},{} does not fit inside the {}x{} canvas", width, height,
                            offset_x, offset_y, canvas_width, canvas_height));
  if (canvas_width == width && canvas_height == height)
    throw_usage(fmt::format("--canvas: {}x{} is the image's own size: nothing to outpaint", canvas_width,
                            canvas_height));
  return CanvasPlacement{canvas_width, canvas_height, offset_x, offset_y};
}

namespace {

void parse_pair(const std::string& text, const std::string& flag, char separator, const char* form, int64_t& first,
                int64_t& second) {
  std::istringstream stream(text);
  char got = 0;
  std::string rest;
  if (!(stream >> first >> got >> second) || got != separator || (stream >> rest))
    throw_usage(fmt::format("{}: \"{}\" is not {}", flag, text, form));
  // Bounded here so that no later sum (offset + width) can overflow.
  for (int64_t value : {first, second})
    if (value < -kMaxCanvasSide || value > kMaxCanvasSide)
      throw_usage(fmt::format("{}: {} is out of range (at most {} pixels)", flag, value, kMaxCanvasSide));
}

}  // namespace

void parse_size(const std::string& text, const std::string& flag, int64_t& width, int64_t& height) {
  parse_pair(text, flag, 'x', "WxH", width, height);
}

void parse_point(const std::string& text, const std::string& flag, int64_t& x, int64_t& y) {
  parse_pair(text, flag, ',', "X,Y", x, y);
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
