// Json::parse (lib/io/json.h), the parser under config.json and every safetensors header.
// Refusal: JsonParseError with an offset inside the text. What it accepts must come back
// unchanged through dump() (compact and pretty) and parse().
#include "fuzz_common.h"
#include "io/json.h"

using namespace maskgit;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text = fuzz::as_string(data, size);
  Json value;
  try {
    value = Json::parse(text);
  } catch (const JsonParseError& e) {
    if (e.offset() > text.size())
      fuzz::finding("JsonParseError offset " + std::to_string(e.offset()) + " is past the end of " +
                    std::to_string(text.size()) + " bytes: " + e.what());
    return 0;
  } catch (...) {
    fuzz::unexpected_exception("Json::parse");
  }
  for (const int indent : {-1, 2}) {
    const std::string dumped = value.dump(indent);
    Json again;
    try {
      again = Json::parse(dumped);
    } catch (...) {
      fuzz::unexpected_exception("Json::parse of dump()");
    }
    if (again != value) fuzz::finding("dump() and parse() changed the value: " + dumped);
  }
  return 0;
}
