#include "cli/image_record.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <utility>

#include "cli/usage.h"
#include "common/error.h"
#include "common/version.h"
#include "io/file_hash.h"
#include "io/image.h"

namespace maskgit {

namespace {

std::optional<RecordJson> replaying;

// A record is a few KiB; anything far larger is not one of ours (parse_json bounds its depth).
constexpr size_t kMaxRecordBytes = size_t{1} << 20;

// The flags a replay may add to the record's command line: they choose where results go and
// how the run goes, never what is made. Long name → whether it takes a value.
const std::map<std::string, bool>& replay_flags() {
  static const std::map<std::string, bool> flags{
      {"--output", true}, {"--json", false},    {"--device", true}, {"--threads", true},
      {"--batch-size", true}, {"--quiet", false}, {"--verbose", false}, {"--model", true}};
  return flags;
}

const std::map<std::string, std::string>& short_flags() {
  static const std::map<std::string, std::string> flags{{"-o", "--output"},     {"-t", "--threads"},
                                                         {"-b", "--batch-size"}, {"-q", "--quiet"},
                                                         {"-v", "--verbose"},    {"-m", "--model"}};
  return flags;
}

// What a record's "arguments" may hold: the flags that decide what is made, by long name →
// whether it takes a value. Outputs (-o, --grid, --save-tokens, --save-mask, ...), help,
// --version, --replay and everything else are refused, so that a PNG cannot make a replay write
// anywhere or do anything but re-make itself.
const std::map<std::string, bool>& recorded_flags() {
  static const std::map<std::string, bool> flags{
      {"--model", true},    {"--class", true},       {"--num", true},      {"--seed", true},
      {"--input", true},    {"--fit", true},         {"--feather", true},  {"--dilate", true},
      {"--mask", true},     {"--threshold", true},   {"--invert", false},  {"--box", true},
      {"--canvas", true},   {"--offset", true},      {"--crop", true},     {"--steps", true},
      {"--start-step", true}, {"--schedule", true},  {"--choice-temperature", true},
      {"--temperature", true}, {"--top-k", true},    {"--cfg-scale", true}, {"--cfg-schedule", true}, {"--order", true},
      {"--dtype", true}};
  return flags;
}

bool is_known_tool(const std::string& name) {
  const std::vector<Tool> tools = all_tools();
  return std::any_of(tools.begin(), tools.end(), [&](Tool tool) { return tool_name(tool) == name; });
}

bool all_digits(const std::string& text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); });
}

// The record's "arguments", checked: strings only; for maskgit-tokenize the subcommand
// reconstruct first; then recorded_flags() only, each value present and not flag-like (a
// negative number only for --cfg-scale); --model and --seed present, the seed a plain number
// equal to the record's "seed", --num 1.
void check_arguments(const RecordJson& record, const std::string& path) {
  const RecordJson& arguments = record["arguments"];
  auto refuse = [&](const std::string& why) {
    throw_bad_input(fmt::format("{}: the record's arguments {}: not a replay of this file", path, why));
  };
  if (!arguments.is_array()) refuse("are not a list");
  if (arguments.size() > 256) refuse("are too many");
  std::vector<std::string> words;
  for (const RecordJson& word : arguments) {
    if (!word.is_string()) refuse("hold a non-string");
    words.push_back(word.get<std::string>());
  }
  size_t i = 0;
  if (record["tool"] == tool_name(Tool::tokenize)) {
    if (words.empty() || words[0] != "reconstruct") refuse("do not start with reconstruct");
    i = 1;
  }
  std::map<std::string, std::string> values;
  for (; i < words.size(); ++i) {
    const std::string& flag = words[i];
    const auto known = recorded_flags().find(flag);
    if (known == recorded_flags().end()) refuse(fmt::format("hold {}", flag.substr(0, 64)));
    if (values.count(flag) > 0 && flag != "--input") refuse(fmt::format("repeat {}", flag));
    std::string value;
    if (known->second) {
      if (i + 1 >= words.size()) refuse(fmt::format("end without a value for {}", flag));
      value = words[++i];
      const bool negative_number = value.size() > 1 && value[0] == '-' &&
                                   (std::isdigit(static_cast<unsigned char>(value[1])) || value[1] == '.');
      if (value.empty() || (value[0] == '-' && !(flag == "--cfg-scale" && negative_number)))
        refuse(fmt::format("give {} the value \"{}\"", flag, value.substr(0, 64)));
    }
    values[flag] = value;
  }
  if (values.count("--model") == 0) refuse("name no --model");
  if (values.count("--seed") > 0 || record.contains("seed")) {
    if (!all_digits(values["--seed"])) refuse("give no plain --seed");
    if (!record.contains("seed") || !record["seed"].is_number_unsigned() ||
        std::to_string(record["seed"].get<uint64_t>()) != values["--seed"])
      refuse("give another --seed than the record's \"seed\"");
  }
  if (values.count("--num") > 0 && values["--num"] != "1") refuse("make more than one image");
  if (record.contains("class") && record["class"].is_number_integer() &&
      values["--class"] != std::to_string(record["class"].get<int64_t>()))
    refuse("give another --class than the record's \"class\"");
}

}  // namespace

std::string record_path(const std::string& path) {
  std::filesystem::path normal = std::filesystem::absolute(path).lexically_normal();
  std::string text = normal.string();
  while (text.size() > 1 && text.back() == '/') text.pop_back();
  return text;
}

RecordJson ModelIdentity::to_json() const {
  RecordJson out = RecordJson::object();
  out["name"] = name;
  out["tokenizer_sha256"] = tokenizer_sha256;
  out["transformer_sha256"] = transformer_sha256.empty() ? RecordJson() : RecordJson(transformer_sha256);
  out["path"] = path;
  return out;
}

ModelIdentity identify_model(const ModelConfig& config) {
  ModelIdentity identity;
  identity.path = record_path(config.directory);
  identity.name = std::filesystem::path(identity.path).filename().string();
  identity.tokenizer_sha256 = sha256_file(config.path_of(kTokenizerWeightsFile));
  if (config.transformer) identity.transformer_sha256 = sha256_file(config.path_of(kTransformerWeightsFile));
  return identity;
}

RecordJson file_identity(const std::string& path) {
  RecordJson out = RecordJson::object();
  out["path"] = record_path(path);
  out["sha256"] = sha256_file(path);
  return out;
}

RecordJson new_image_record(Tool tool, const ModelIdentity& model) {
  RecordJson record = RecordJson::object();
  record["schema"] = kImageRecordSchema;
  record["tool"] = tool_name(tool);
  record["toolkit"] = {{"version", toolkit_version()}, {"commit", toolkit_commit()}};
  record["model"] = model.to_json();
  return record;
}

std::string exact_number(double value) { return fmt::format("{}", value); }

RecordJson read_image_record(const std::string& path) {
  const std::map<std::string, std::string> text = read_png_text(path);
  const auto found = text.find(kImageRecordKeyword);
  if (found == text.end())
    throw_bad_input(fmt::format("{}: no maskgit-cpp record (no \"{}\" text in the PNG)", path, kImageRecordKeyword));
  if (found->second.size() > kMaxRecordBytes)
    throw_bad_input(fmt::format("{}: the \"{}\" text is {} bytes, more than a record's {}", path, kImageRecordKeyword,
                                found->second.size(), kMaxRecordBytes));
  RecordJson record;
  try {
    record = parse_json(found->second);  // strict: duplicate keys, depth and non-UTF-8 refused
  } catch (const JsonParseError& e) {
    throw_bad_input(fmt::format("{}: the \"{}\" text is not a JSON record ({})", path, kImageRecordKeyword, e.what()));
  }
  if (!record.is_object() || !record.contains("schema") || !record["schema"].is_string())
    throw_bad_input(fmt::format("{}: the \"{}\" text has no schema (made by a maskgit-cpp before records were "
                                "versioned?)",
                                path, kImageRecordKeyword));
  const std::string schema = record["schema"].get<std::string>();
  if (schema != kImageRecordSchema)
    throw_bad_input(fmt::format("{}: record schema \"{}\", this build reads \"{}\"", path, schema.substr(0, 64),
                                kImageRecordSchema));
  if (!record.contains("tool") || !record["tool"].is_string() || !is_known_tool(record["tool"].get<std::string>()))
    throw_bad_input(fmt::format("{}: the record names no maskgit-* tool", path));
  if (record.contains("seed") && !record["seed"].is_number_unsigned())
    throw_bad_input(fmt::format("{}: the record's seed is not a whole number from 0 to 2^64-1", path));
  if (record.contains("arguments")) check_arguments(record, path);
  return record;
}

std::vector<std::string> expand_replay(Tool tool, const std::vector<std::string>& args) {
  replaying.reset();  // a new command line: replaying only if this one says so
  if ((option_spec("replay").tools & tool_bit(tool)) == 0) return args;  // CLI11 refuses --replay
  std::optional<std::string> file;
  std::vector<std::string> rest;  // the user's other arguments, as given
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--replay" || arg.rfind("--replay=", 0) == 0) {
      if (file) throw_usage("--replay: give one file");
      if (arg == "--replay") {
        if (i + 1 >= args.size()) throw_usage("--replay: needs a PNG file");
        file = args[++i];
      } else {
        file = arg.substr(9);
      }
      continue;
    }
    rest.push_back(arg);
  }
  if (!file) return args;
  if (file->empty()) throw_usage("--replay: empty value");
  // The user's own flags: only those that choose where results go and how the run goes.
  auto refuse = [](const std::string& arg) {
    throw_usage(fmt::format("--replay: {} cannot be given with it (the file's record decides what is made; only -o, "
                            "--json, -m, --device, -t, -b, -q and -v may be added)",
                            arg));
  };
  std::set<std::string> given;  // their long names
  std::vector<std::string> own;
  for (size_t i = 0; i < rest.size(); ++i) {
    const std::string& arg = rest[i];
    if (tool == Tool::tokenize && arg == "reconstruct") continue;  // the record's subcommand, typed again
    own.push_back(arg);
    if (arg.size() >= 2 && arg[0] == '-' && arg[1] != '-') {  // -o FILE, -oFILE, -q (never -qc4)
      const auto shorter = short_flags().find(arg.substr(0, 2));
      if (shorter == short_flags().end()) refuse(arg);
      const std::string& name = shorter->second;
      const bool takes_value = replay_flags().at(name);
      if (!takes_value && arg.size() > 2) refuse(arg);
      given.insert(name);
      if (takes_value && arg.size() == 2 && i + 1 < rest.size()) own.push_back(rest[++i]);
      continue;
    }
    const std::string name = arg.substr(0, arg.find('='));
    const auto flag = replay_flags().find(name);
    if (flag == replay_flags().end() || (!flag->second && name.size() < arg.size())) refuse(arg);
    given.insert(name);
    if (flag->second && name.size() == arg.size() && i + 1 < rest.size()) own.push_back(rest[++i]);
  }
  if (given.count("--output") == 0 && tool != Tool::tokenize)
    throw_usage("--replay: give -o/--output, where the image made again goes");
  const RecordJson record = read_image_record(*file);
  const std::string made_by = record["tool"].get<std::string>();
  if (made_by != tool_name(tool))
    throw_usage(fmt::format("--replay: {} was made by {}: run {} --replay {}", *file, made_by, made_by, *file));
  if (!record.contains("arguments"))
    throw_bad_input(fmt::format("{}: its record has no arguments to replay ({})", *file,
                                record.contains("replayable") && record["replayable"].is_string()
                                    ? record["replayable"].get<std::string>().substr(0, 200)
                                    : std::string("not a replayable result")));
  std::vector<std::string> out{args.front()};
  const RecordJson& arguments = record["arguments"];
  for (size_t i = 0; i < arguments.size(); ++i) {
    const std::string arg = arguments[i].get<std::string>();
    // A flag the user gives again (the model's path) replaces the record's, with its value.
    if (given.count(arg) > 0 && replay_flags().count(arg) > 0) {
      if (replay_flags().at(arg)) ++i;
      continue;
    }
    out.push_back(arg);
  }
  out.insert(out.end(), own.begin(), own.end());
  replaying = record;
  return out;
}

const RecordJson* replayed_record() { return replaying ? &*replaying : nullptr; }

void check_replay_identity(const ModelIdentity& model, const RecordJson& input) {
  const RecordJson* record = replayed_record();
  if (record == nullptr) return;
  const RecordJson expected = record->value("model", RecordJson::object());
  for (const char* key : {"tokenizer_sha256", "transformer_sha256"}) {
    const RecordJson actual = model.to_json()[key];
    if (expected.value(key, RecordJson()) != actual)
      throw_bad_input(fmt::format("--replay: the model at {} is not the one that made the file ({} differs)",
                                  model.path, key));
  }
  if (input.is_null()) return;
  const RecordJson want = record->value("input", RecordJson());
  if (!want.is_object() || want.value("sha256", std::string()) != input.value("sha256", std::string()))
    throw_bad_input(fmt::format("--replay: {} is not the input that made the file (its SHA-256 differs)",
                                input.value("path", std::string())));
}

void check_replay_region(const RecordJson& region) {
  const RecordJson* record = replayed_record();
  if (record == nullptr) return;
  const RecordJson expected = record->value("region", RecordJson::object());
  if (expected == region) return;
  if (region.contains("mask") && expected.value("mask", RecordJson()) != region["mask"])
    throw_bad_input(fmt::format("--replay: {} is not the mask that made the file (its SHA-256 differs)",
                                region["mask"].value("path", std::string())));
  for (const auto& [key, value] : region.items())
    if (expected.value(key, RecordJson()) != value)
      throw_bad_input(fmt::format("--replay: the region's {} is {} now, {} in the file's record", key, dump_json(value),
                                  dump_json(expected.value(key, RecordJson())).substr(0, 200)));
  throw_bad_input("--replay: the region differs from the file's record");
}

}  // namespace maskgit
