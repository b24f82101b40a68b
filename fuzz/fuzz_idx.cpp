// parse_idx_u8 (lib/data/idx.h; read_idx_u8 reads the file and calls it), plain and gzipped.
// Refusal: Error(bad_input) naming the file. An accepted file is a uint8 tensor of rank 1..4
// with no zero dimension.
#include "data/idx.h"
#include "fuzz_torch.h"

using namespace maskgit;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::init_torch();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string source = "fuzz.idx";
  torch::Tensor tensor;
  try {
    tensor = parse_idx_u8(fuzz::as_string(data, size), source);
  } catch (const Error& e) {
    fuzz::check_bad_input(e, source, "parse_idx_u8");
    return 0;
  } catch (...) {
    fuzz::unexpected_exception("parse_idx_u8");
  }
  if (tensor.scalar_type() != torch::kUInt8 || tensor.dim() < 1 || tensor.dim() > 4 || tensor.numel() == 0)
    fuzz::finding("parse_idx_u8 accepted a tensor of shape " + fuzz::shape_text(tensor));
  return 0;
}
