// Not a test: prints cli/options.h's option table as JSON lines (id, names, help, tools), for
// tests/tool_help.py, which checks every tool's --help against it.
#include <cstdio>

#include "cli/image_record.h"
#include "cli/options.h"

int main() {
  using namespace maskgit;
  for (const OptionSpec& spec : option_table()) {
    RecordJson row = RecordJson::object();
    row["id"] = std::string(spec.id);
    row["names"] = std::string(spec.names);
    row["help"] = std::string(spec.help);
    row["tools"] = RecordJson::array();
    for (Tool tool : all_tools())
      if ((spec.tools & tool_bit(tool)) != 0) row["tools"].push_back(tool_name(tool));
    std::printf("%s\n", row.dump().c_str());
  }
  return 0;
}
