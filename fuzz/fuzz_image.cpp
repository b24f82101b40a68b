// probe_image_bytes, decode_image and parse_png_text (lib/io/image.h; probe_image, read_image
// and read_png_text read the file and call them), then convert_channels as read_image_as does.
// Refusal: Error(bad_input) naming the file. decode_image accepts only what probe accepts, with
// the probed size and channels and values in [0, 1].
#include "fuzz_torch.h"
#include "io/image.h"

using namespace maskgit;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::init_torch();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string source = "fuzz.png";
  const std::string bytes = fuzz::as_string(data, size);

  try {
    parse_png_text(bytes, source);
  } catch (const Error& e) {
    fuzz::check_bad_input(e, source, "parse_png_text");
  } catch (...) {
    fuzz::unexpected_exception("parse_png_text");
  }

  ImageInfo info;
  bool probed = false;
  try {
    info = probe_image_bytes(bytes, source);
    probed = true;
  } catch (const Error& e) {
    fuzz::check_bad_input(e, source, "probe_image_bytes");
  } catch (...) {
    fuzz::unexpected_exception("probe_image_bytes");
  }

  torch::Tensor image;
  try {
    image = decode_image(bytes, source);
  } catch (const Error& e) {
    fuzz::check_bad_input(e, source, "decode_image");
    return 0;
  } catch (...) {
    fuzz::unexpected_exception("decode_image");
  }
  if (!probed) fuzz::finding("decode_image accepted an image that probe_image_bytes refused");
  if (image.dim() != 3 || image.size(0) != info.channels || image.size(1) != info.height ||
      image.size(2) != info.width || image.scalar_type() != torch::kFloat32)
    fuzz::finding("decode_image gave " + fuzz::shape_text(image) + " for a probed " + std::to_string(info.channels) +
                  "x" + std::to_string(info.height) + "x" + std::to_string(info.width) + " image");
  if (image.min().item<float>() < 0.0f || image.max().item<float>() > 1.0f)
    fuzz::finding("decode_image gave values outside [0, 1]");
  try {
    for (const int channels : {1, 3}) {
      const torch::Tensor converted = convert_channels(image, channels);
      if (converted.dim() != 3 || converted.size(0) != channels || converted.size(1) != info.height ||
          converted.size(2) != info.width)
        fuzz::finding("convert_channels(" + std::to_string(channels) + ") gave " + fuzz::shape_text(converted));
    }
  } catch (...) {
    fuzz::unexpected_exception("convert_channels of a decoded image");
  }
  return 0;
}
