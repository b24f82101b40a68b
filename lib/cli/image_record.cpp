#include "cli/image_record.h"

#include <fmt/format.h>

#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "cli/usage.h"
#include "common/error.h"
#include "common/version.h"
#include "io/file_hash.h"
#include "io/image.h"

namespace maskgit {

namespace {

std::optional<RecordJson> replaying;

std::string directory_name(const std::string& directory) {
  std::filesystem::path path = std::filesystem::path(directory).lexically_normal();
  if (path.filename().empty()) path = path.parent_path();  // "models/x/"
  std::string name = path.filename().string();
  if (name.empty() || name == "." || name == "..")
    name = std::filesystem::absolute(directory).lexically_normal().filename().string();
  return name;
}

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

}  // namespace

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
  identity.name = directory_name(config.directory);
  identity.path = config.directory;
  identity.tokenizer_sha256 = sha256_file(config.path_of(kTokenizerWeightsFile));
  if (config.transformer) identity.transformer_sha256 = sha256_file(config.path_of(kTransformerWeightsFile));
  return identity;
}

RecordJson file_identity(const std::string& path) {
  RecordJson out = RecordJson::object();
  out["path"] = path;
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
  RecordJson record;
  try {
    record = RecordJson::parse(found->second);
  } catch (const nlohmann::json::exception& e) {
    throw_bad_input(fmt::format("{}: the \"{}\" text is not JSON ({})", path, kImageRecordKeyword, e.what()));
  }
  if (!record.is_object() || !record.contains("schema") || !record["schema"].is_string())
    throw_bad_input(fmt::format("{}: the \"{}\" text has no schema (made by a maskgit-cpp before records were "
                                "versioned?)",
                                path, kImageRecordKeyword));
  const std::string schema = record["schema"].get<std::string>();
  if (schema != kImageRecordSchema)
    throw_bad_input(fmt::format("{}: record schema \"{}\", this build reads \"{}\"", path, schema,
                                kImageRecordSchema));
  if (!record.contains("tool") || !record["tool"].is_string())
    throw_bad_input(fmt::format("{}: the record has no \"tool\"", path));
  return record;
}

std::vector<std::string> expand_replay(Tool tool, const std::vector<std::string>& args) {
  std::optional<std::string> file;
  std::vector<std::string> rest;  // the user's other arguments, as given
  std::set<std::string> given;    // their long names
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
  for (size_t i = 0; i < rest.size(); ++i) {
    const std::string& arg = rest[i];
    std::string name = arg.substr(0, arg.find('='));
    const bool inline_value = name.size() < arg.size();
    const auto shorter = short_flags().find(name.substr(0, 2));
    if (name.size() >= 2 && name[0] == '-' && name[1] != '-') {  // -o FILE, -oFILE, -q
      if (shorter == short_flags().end())
        throw_usage(fmt::format("--replay: {} cannot be given with it (the file's record decides what is made; "
                                "only -o, --json, --device, -t, -b, -m, -q and -v may be added)",
                                arg));
      const bool attached = name.size() > 2;
      name = shorter->second;
      given.insert(name);
      if (replay_flags().at(name) && !attached && i + 1 < rest.size()) ++i;
      continue;
    }
    const auto flag = replay_flags().find(name);
    if (flag == replay_flags().end())
      throw_usage(fmt::format("--replay: {} cannot be given with it (the file's record decides what is made; only "
                              "-o, --json, --device, -t, -b, -m, -q and -v may be added)",
                              arg));
    given.insert(name);
    if (flag->second && !inline_value && i + 1 < rest.size()) ++i;
  }
  const RecordJson record = read_image_record(*file);
  const std::string made_by = record["tool"].get<std::string>();
  if (made_by != tool_name(tool))
    throw_usage(fmt::format("--replay: {} was made by {}: run {} --replay {}", *file, made_by, made_by, *file));
  if (!record.contains("arguments") || !record["arguments"].is_array())
    throw_bad_input(fmt::format("{}: its record has no arguments to replay ({})", *file,
                                record.contains("replayable") && record["replayable"].is_string()
                                    ? record["replayable"].get<std::string>()
                                    : std::string("not a replayable result")));
  std::vector<std::string> out{args.front()};
  const RecordJson& arguments = record["arguments"];
  for (size_t i = 0; i < arguments.size(); ++i) {
    if (!arguments[i].is_string()) throw_bad_input(fmt::format("{}: the record's arguments are not strings", *file));
    const std::string arg = arguments[i].get<std::string>();
    // A flag the user gives again (the model's path) replaces the record's, with its value.
    if (given.count(arg) > 0 && replay_flags().count(arg) > 0) {
      if (replay_flags().at(arg)) ++i;
      continue;
    }
    out.push_back(arg);
  }
  out.insert(out.end(), rest.begin(), rest.end());
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
      throw_bad_input(fmt::format("--replay: the model at {} is not the one that made the file ({} {} there, {} "
                                  "recorded)",
                                  model.path, key, actual.is_string() ? actual.get<std::string>() : "none",
                                  expected.value(key, RecordJson()).dump()));
  }
  if (input.is_null()) return;
  const RecordJson want = record->value("input", RecordJson());
  if (!want.is_object() || want.value("sha256", std::string()) != input.value("sha256", std::string()))
    throw_bad_input(fmt::format("--replay: {} is not the input that made the file (its SHA-256 differs)",
                                input.value("path", std::string())));
}

}  // namespace maskgit
