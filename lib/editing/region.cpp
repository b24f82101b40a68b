#include "editing/region.h"

#include <fmt/format.h>

#include <cmath>

#include "common/error.h"
#include "io/image.h"

namespace maskgit {

namespace F = torch::nn::functional;

PixelMask read_pixel_mask(const std::string& path, int64_t width, int64_t height, const MaskReadOptions& options) {
  const torch::Tensor picture = read_image(path);
  if (picture.size(2) != width || picture.size(1) != height)
    throw_bad_input(fmt::format("{}: mask is {}x{}, the image is {}x{}", path, picture.size(2), picture.size(1), width,
                                height));
  const int64_t channels = picture.size(0);
  const bool has_alpha = channels == 2 || channels == 4;
  PixelMask mask;
  torch::Tensor value;
  // The alpha channel decides only when it marks something: some pixel is transparent (alpha
  // below one half). A slightly translucent pixel in an opaque picture changes nothing.
  if (has_alpha && (picture[channels - 1] < kTransparentAlpha).any().item<bool>()) {
    value = picture[channels - 1];
    mask.channel = "alpha";
  } else {
    value = convert_channels(has_alpha ? picture.slice(0, 0, channels - 1) : picture, 1)[0];
    mask.channel = "grey";
  }
  const torch::Tensor selected = value >= options.threshold;
  mask.selected = options.invert ? selected.logical_not() : selected;
  return mask;
}

torch::Tensor pixel_mask_to_token_mask(const torch::Tensor& pixel_mask, int64_t factor) {
  TORCH_CHECK(pixel_mask.dim() == 2, "pixel mask must be [H, W]");
  const int64_t height = pixel_mask.size(0), width = pixel_mask.size(1);
  const int64_t rows = (height + factor - 1) / factor, columns = (width + factor - 1) / factor;
  // Pad with "keep" so a partial cell at the border counts only its real pixels.
  torch::Tensor padded = torch::zeros({rows * factor, columns * factor}, torch::kFloat);
  padded.slice(0, 0, height).slice(1, 0, width).copy_(pixel_mask.to(torch::kFloat));
  return F::max_pool2d(padded.view({1, 1, rows * factor, columns * factor}),
                       F::MaxPool2dFuncOptions(factor).stride(factor))
             .view({rows, columns}) > 0.5;
}

torch::Tensor dilate_token_mask(const torch::Tensor& token_mask, int64_t cells) {
  if (cells <= 0) return token_mask.clone();
  const int64_t rows = token_mask.size(0), columns = token_mask.size(1);
  // Pad with "keep", then a (2k+1)² max-pool is exactly a k-cell dilation.
  const torch::Tensor padded =
      F::pad(token_mask.to(torch::kFloat).view({1, 1, rows, columns}), F::PadFuncOptions({cells, cells, cells, cells}));
  return F::max_pool2d(padded, F::MaxPool2dFuncOptions(2 * cells + 1).stride(1)).view({rows, columns}) > 0.5;
}

void require_box_inside(const PixelBox& box, int64_t width, int64_t height) {
  if (box.width <= 0 || box.height <= 0)
    throw InvalidArgument("box", fmt::format("the box {},{},{},{} is empty", box.x, box.y, box.width, box.height));
  if (box.x < 0 || box.y < 0 || box.x + box.width > width || box.y + box.height > height)
    throw InvalidArgument("box", fmt::format("the box {},{},{},{} is not inside the {}x{} image", box.x, box.y,
                                             box.width, box.height, width, height));
}

torch::Tensor box_pixel_mask(const PixelBox& box, int64_t width, int64_t height) {
  require_box_inside(box, width, height);
  torch::Tensor mask = torch::zeros({height, width}, torch::kBool);
  mask.slice(0, box.y, box.y + box.height).slice(1, box.x, box.x + box.width).fill_(true);
  return mask;
}

double default_feather_radius(int64_t height, int64_t width) {
  return static_cast<double>(std::max<int64_t>(0, std::min(height, width) / 16 - 1));
}

namespace {

// Separable Gaussian blur of [H, W] with edge replication (so a region touching the border
// is not faded towards the original there); kernel cut at 3σ.
torch::Tensor gaussian_blur(const torch::Tensor& plane, double sigma) {
  const auto half = static_cast<int64_t>(std::ceil(3.0 * sigma));
  if (half <= 0) return plane;
  std::vector<float> weights;
  double total = 0;
  for (int64_t i = -half; i <= half; ++i) {
    const double w = std::exp(-0.5 * static_cast<double>(i * i) / (sigma * sigma));
    weights.push_back(static_cast<float>(w));
    total += w;
  }
  torch::Tensor kernel = torch::tensor(weights) / static_cast<float>(total);
  torch::Tensor image = plane.view({1, 1, plane.size(0), plane.size(1)});
  // Replication of a zero/one border never creates weight where the image has none nearby.
  image = F::pad(image, F::PadFuncOptions({half, half, 0, 0}).mode(torch::kReplicate));
  image = F::conv2d(image, kernel.view({1, 1, 1, -1}));
  image = F::pad(image, F::PadFuncOptions({0, 0, half, half}).mode(torch::kReplicate));
  image = F::conv2d(image, kernel.view({1, 1, -1, 1}));
  return image.view({plane.size(0), plane.size(1)});
}

}  // namespace

torch::Tensor feathered_weight(const torch::Tensor& token_mask, int64_t factor, int64_t height, int64_t width,
                               double radius) {
  torch::Tensor weight = token_mask_picture(token_mask, factor, height, width)[0];
  if (radius > 0) weight = gaussian_blur(weight, radius);
  // Summing the kernel in float leaves 1 − ε deep inside the region; make "all regenerated"
  // and "all original" exact.
  weight = weight.clamp(0, 1);
  return torch::where(weight > 1.0f - 1e-6f, torch::ones_like(weight), weight);
}

torch::Tensor composite(const torch::Tensor& original, const torch::Tensor& generated, const torch::Tensor& weight) {
  // lerp is exact at both ends: weight 0 gives the original's value, weight 1 the generated one.
  return torch::lerp(original, generated, weight.expand_as(original));
}

torch::Tensor token_mask_picture(const torch::Tensor& token_mask, int64_t factor, int64_t height, int64_t width) {
  return token_mask.to(torch::kFloat)
      .repeat_interleave(factor, 0)
      .repeat_interleave(factor, 1)
      .slice(0, 0, height)
      .slice(1, 0, width)
      .unsqueeze(0)
      .contiguous();
}

}  // namespace maskgit
