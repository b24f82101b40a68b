// FlaxCheckpoint::parse and FlaxCheckpoint::read (lib/convert/flax_msgpack.h). Refusal:
// Error(bad_input) naming the source. An accepted checkpoint's arrays are consistent (the
// byte count is the shape's product times the element size, every byte readable), and
// reading the same bytes from a file (memory-mapped) gives the same arrays.
#include "convert/flax_msgpack.h"
#include "fuzz_common.h"

#include <functional>
#include <map>
#include <string>

using namespace maskgit;

namespace {

const char* const kSource = "fuzz.checkpoint";

struct Outcome {
  bool ok = false;
  std::map<std::string, std::string> arrays;  // path → "shape/dtype/bytes"
};

Outcome attempt(const char* loader, const std::function<FlaxCheckpoint()>& read) {
  Outcome outcome;
  try {
    const FlaxCheckpoint checkpoint = read();
    for (const auto& [path, array] : checkpoint.arrays()) {
      uint64_t expected = flax_dtype_size(array.dtype);
      std::string text;
      for (int64_t size : array.shape) {
        if (size < 0) fuzz::finding("accepted a negative dimension in " + path);
        expected *= static_cast<uint64_t>(size);
        text += std::to_string(size) + ",";
      }
      if (expected != array.bytes || static_cast<uint64_t>(array.numel) * flax_dtype_size(array.dtype) != array.bytes)
        fuzz::finding("accepted " + path + " whose bytes do not match its shape");
      text += std::string("/") + flax_dtype_name(array.dtype) + "/";
      text.append(reinterpret_cast<const char*>(array.data), array.bytes);  // every byte must be readable
      outcome.arrays[path] = text;
    }
    outcome.ok = true;
  } catch (const Error& e) {
    fuzz::check_bad_input(e, kSource, loader);
  } catch (...) {
    fuzz::unexpected_exception(loader);
  }
  return outcome;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Outcome parsed = attempt("FlaxCheckpoint::parse", [&] { return FlaxCheckpoint::parse(fuzz::as_string(data, size), kSource); });
  const std::string path = fuzz::write_scratch_file(kSource, data, size);
  const Outcome read = attempt("FlaxCheckpoint::read", [&] { return FlaxCheckpoint::read(path); });
  if (read.ok != parsed.ok || read.arrays != parsed.arrays)
    fuzz::finding("FlaxCheckpoint::read and FlaxCheckpoint::parse disagree");
  return 0;
}
