// maskgit-info: what made a PNG (its maskgit-cpp.image/1 record), as text or JSON lines.
#include <fmt/format.h>

#include "cli/common.h"
#include "cli/image_record.h"
#include "cli/options.h"
#include "common/console.h"
#include "common/error.h"

namespace {

using namespace maskgit;

// Quotes a command-line word for a POSIX shell when it needs it.
std::string shell_word(const std::string& word) {
  const bool plain = !word.empty() && word.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                             "0123456789-_./,:=%+@") == std::string::npos;
  if (plain) return word;
  std::string out = "'";
  for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string scalar_text(const RecordJson& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_null()) return "none";
  return dump_json(value);
}

// "key: value" lines, nested objects by dotted keys, in the record's order.
void print_fields(const RecordJson& object, const std::string& prefix) {
  for (const auto& [key, value] : object.items()) {
    if (key == "arguments") continue;
    if (value.is_object()) {
      print_fields(value, prefix + key + ".");
    } else {
      print_stdout("  {}{}: {}\n", prefix, key, scalar_text(value));
    }
  }
}

void print_record(const std::string& file, const RecordJson& record) {
  print_stdout("{}\n", file);
  print_fields(record, "");
  if (record.contains("arguments") && record["arguments"].is_array()) {
    std::string command = record["tool"].get<std::string>();
    for (const RecordJson& word : record["arguments"])
      if (word.is_string()) command += " " + shell_word(word.get<std::string>());
    print_stdout("  command: {} -o OUT.png\n", command);
    print_stdout("  replay: {} --replay {} -o OUT.png\n", record["tool"].get<std::string>(), shell_word(file));
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Print what made PNG files written by the maskgit-* tools: the maskgit-cpp.image/1 record each\n"
               "holds (tool, toolkit version and commit, model name and weights SHA-256, seed, class, settings,\n"
               "input and region for edits) and the command that makes the image again (or --replay FILE).\n"
               "Exit status 3 when a file cannot be read or holds no record (the others are still printed).",
               "maskgit-info"};
  std::vector<std::string> files;
  bool json_output = false;
  ToolOptions cli(app, Tool::info);
  cli.add_no_default("inputs", files)->required();
  cli.add_flag("json", json_output);

  return run_tool(cli, argc, argv, [&] {
    std::string first_error;
    for (const std::string& file : files) {
      RecordJson record;
      try {
        record = read_image_record(file);
      } catch (const Error& e) {
        if (first_error.empty()) first_error = e.what();
        if (files.size() > 1) print_stderr("maskgit-info: error: {}\n", e.what());
        continue;
      }
      if (json_output) {
        RecordJson line = RecordJson::object();
        line["file"] = file;
        line["record"] = record;
        print_stdout("{}\n", dump_json(line));
      } else {
        print_record(file, record);
      }
    }
    if (!first_error.empty()) {
      flush_stdout();
      // One file: its one error line; several: each was printed, and the status says so.
      throw_bad_input(files.size() > 1 ? "some files have no readable record (above)" : first_error);
    }
  });
}
