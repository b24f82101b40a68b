// parse_json (lib/io/json.h), the strict parser (nlohmann's, plus our checks) under config.json
// and every safetensors header. Refusal: JsonParseError with an offset inside the text; any other
// exception (one of nlohmann's own escaping our rewording) is a finding. What it accepts must come
// back unchanged through dump_json() (compact and pretty) and parse_json().
#include "fuzz_common.h"
#include "io/json.h"

using namespace maskgit;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text = fuzz::as_string(data, size);
  Json value;
  try {
    value = parse_json(text);
  } catch (const JsonParseError& e) {
    if (e.offset() > text.size())
      fuzz::finding("JsonParseError offset " + std::to_string(e.offset()) + " is past the end of " +
                    std::to_string(text.size()) + " bytes: " + e.what());
    return 0;
  } catch (...) {
    fuzz::unexpected_exception("parse_json");
  }
  for (const int indent : {-1, 2}) {
    std::string dumped;
    Json again;
    try {
      dumped = dump_json(value, indent);
      again = parse_json(dumped);
    } catch (...) {
      fuzz::unexpected_exception("parse_json of dump_json()");
    }
    if (again != value) fuzz::finding("dump_json() and parse_json() changed the value: " + dumped);
  }
  return 0;
}
