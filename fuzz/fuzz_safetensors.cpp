// parse_safetensors and read_safetensors (lib/io/safetensors.h). Refusal: SafetensorsError
// whose message starts with the source. An accepted file has consistent entries, and
// serialize_safetensors then parse_safetensors gives it back unchanged; read_safetensors of
// the same bytes in a file agrees with parse_safetensors.
#include "fuzz_common.h"
#include "io/safetensors.h"

using namespace maskgit;

namespace {

const char* const kSource = "fuzz.safetensors";

bool same(const SafetensorsFile& a, const SafetensorsFile& b) {
  if (a.metadata != b.metadata || a.tensors.size() != b.tensors.size()) return false;
  for (const SafetensorsEntry& entry : a.tensors) {
    const SafetensorsEntry* other = b.find(entry.name);
    if (!other || other->dtype != entry.dtype || other->shape != entry.shape || other->data != entry.data)
      return false;
  }
  return true;
}

// The outcome of one read: the file, or the refusal's message.
struct Outcome {
  bool ok = false;
  SafetensorsFile file;
  std::string message;
};

template <typename Read>
Outcome attempt(const char* loader, Read read) {
  Outcome outcome;
  try {
    outcome.file = read();
    outcome.ok = true;
  } catch (const SafetensorsError& e) {
    outcome.message = e.what();
  } catch (...) {
    fuzz::unexpected_exception(loader);
  }
  return outcome;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes = fuzz::as_string(data, size);
  const Outcome parsed = attempt("parse_safetensors", [&] { return parse_safetensors(bytes, kSource); });
  if (!parsed.ok && parsed.message.rfind(std::string(kSource) + ": ", 0) != 0)
    fuzz::finding("SafetensorsError does not start with the source: " + parsed.message);

  const std::string path = fuzz::write_scratch_file(kSource, data, size);
  const Outcome read = attempt("read_safetensors", [&] { return read_safetensors(path); });
  if (read.ok != parsed.ok || (read.ok && !same(read.file, parsed.file)))
    fuzz::finding("read_safetensors and parse_safetensors disagree: " + read.message + " / " + parsed.message);
  if (!parsed.ok) return 0;

  for (const SafetensorsEntry& entry : parsed.file.tensors) {
    uint64_t expected = dtype_size(entry.dtype);
    for (const int64_t dim : entry.shape) {
      if (dim < 0) fuzz::finding("accepted a negative dimension in \"" + entry.name + "\"");
      expected *= static_cast<uint64_t>(dim);
    }
    if (expected != entry.data.size())
      fuzz::finding("accepted \"" + entry.name + "\" with " + std::to_string(entry.data.size()) +
                    " bytes for a shape that needs " + std::to_string(expected));
  }
  std::string serialized;
  try {
    serialized = serialize_safetensors(parsed.file);
  } catch (...) {
    fuzz::unexpected_exception("serialize_safetensors of an accepted file");
  }
  const Outcome again = attempt("parse_safetensors of serialize_safetensors",
                                [&] { return parse_safetensors(serialized, "serialized"); });
  if (!again.ok) fuzz::finding("serialize_safetensors output is refused: " + again.message);
  if (!same(again.file, parsed.file)) fuzz::finding("serialize_safetensors and parse_safetensors changed the file");
  return 0;
}
