// parse_token_file (lib/tokenizer/token_file.h; read_token_file reads the file and calls it):
// a safetensors file with "ids" [N, h, w], optional "labels" [N] and size metadata. Refusal:
// Error(bad_input) naming the file. An accepted file has bounded metadata, int64 ids inside the
// codebook in a grid no larger than the image, and non-negative int64 labels matching them.
#include "fuzz_torch.h"
#include "io/image.h"
#include "tokenizer/token_file.h"

using namespace maskgit;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::init_torch();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string source = "fuzz.tokens.safetensors";
  TokenGrid grid;
  try {
    grid = parse_token_file(fuzz::as_string(data, size), source);
  } catch (const Error& e) {
    fuzz::check_bad_input(e, source, "parse_token_file");
    return 0;
  } catch (...) {
    fuzz::unexpected_exception("parse_token_file");
  }
  if (grid.image_height < 1 || grid.image_width < 1 || grid.image_height > kMaxImageSide ||
      grid.image_width > kMaxImageSide || grid.codebook_size < 1 || grid.codebook_size > (int64_t{1} << 31))
    fuzz::finding("parse_token_file accepted metadata out of range");
  if (grid.ids.dim() != 3 || grid.ids.scalar_type() != torch::kLong || grid.ids.size(1) > grid.image_height ||
      grid.ids.size(2) > grid.image_width)
    fuzz::finding("parse_token_file accepted ids of shape " + fuzz::shape_text(grid.ids));
  if (grid.ids.numel() > 0 &&
      (grid.ids.min().item<int64_t>() < 0 || grid.ids.max().item<int64_t>() >= grid.codebook_size))
    fuzz::finding("parse_token_file accepted ids outside the codebook");
  if (grid.labels.defined() &&
      (grid.labels.dim() != 1 || grid.labels.size(0) != grid.ids.size(0) || grid.labels.scalar_type() != torch::kLong ||
       (grid.labels.numel() > 0 && grid.labels.min().item<int64_t>() < 0)))
    fuzz::finding("parse_token_file accepted labels of shape " + fuzz::shape_text(grid.labels) + " or negative ones");
  return 0;
}
