// read_pixel_mask (lib/editing/region.h), the --mask picture of the editing tools, then
// pixel_mask_to_token_mask and dilate_token_mask as the tools use them. The first input byte
// picks the options (threshold, invert, downsampling factor, dilation); the rest is the file,
// read at the size probe_image reports (so that decoding is reached) or, when probing refuses
// it, at 8x8. Refusal: Error(bad_input) naming the file.
#include "editing/region.h"
#include "fuzz_torch.h"
#include "io/image.h"

using namespace maskgit;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::init_torch();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t choice = data[0];
  MaskReadOptions options;
  options.invert = (choice & 1) != 0;
  options.threshold = ((choice >> 1) & 3) / 3.0;  // 0, 1/3, 2/3, 1
  const int64_t factor = int64_t{1} << ((choice >> 3) & 3);  // 1, 2, 4, 8
  const int64_t cells = (choice >> 5) & 3;
  const std::string path = fuzz::write_scratch_file("mask.png", data + 1, size - 1);

  int64_t width = 8, height = 8;
  try {
    const ImageInfo info = probe_image(path);
    width = info.width;
    height = info.height;
  } catch (const Error& e) {
    fuzz::check_bad_input(e, path, "probe_image");
  } catch (...) {
    fuzz::unexpected_exception("probe_image");
  }

  PixelMask read;
  try {
    read = read_pixel_mask(path, width, height, options);
  } catch (const Error& e) {
    fuzz::check_bad_input(e, path, "read_pixel_mask");
    return 0;
  } catch (...) {
    fuzz::unexpected_exception("read_pixel_mask");
  }
  const torch::Tensor& mask = read.selected;
  if (read.channel != "alpha" && read.channel != "grey") fuzz::finding("read_pixel_mask used channel " + read.channel);
  if (mask.dim() != 2 || mask.size(0) != height || mask.size(1) != width || mask.scalar_type() != torch::kBool)
    fuzz::finding("read_pixel_mask gave " + fuzz::shape_text(mask) + " for a " + std::to_string(width) + "x" +
                  std::to_string(height) + " picture");
  try {
    const torch::Tensor tokens = dilate_token_mask(pixel_mask_to_token_mask(mask, factor), cells);
    if (tokens.dim() != 2 || tokens.size(0) != (height + factor - 1) / factor ||
        tokens.size(1) != (width + factor - 1) / factor)
      fuzz::finding("token mask " + fuzz::shape_text(tokens) + " for a " + std::to_string(width) + "x" +
                    std::to_string(height) + " mask at factor " + std::to_string(factor));
    // A token is regenerated when any pixel of its cell is: never fewer tokens than needed.
    if (mask.any().item<bool>() && !tokens.any().item<bool>()) fuzz::finding("the token mask lost the region");
  } catch (...) {
    fuzz::unexpected_exception("pixel_mask_to_token_mask of a read mask");
  }
  return 0;
}
