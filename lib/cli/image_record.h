#pragma once
// The record every maskgit-* tool stores in each PNG it writes (an iTXt chunk, keyword
// "maskgit"): one versioned JSON object, schema "maskgit-cpp.image/1", saying what made the
// image: the tool and toolkit (version, commit), the model's identity (name, SHA-256 of its two
// weights files, path as a hint), the exact integer seed, class, every decoding setting, for
// edits the input's identity (path, SHA-256) and the region, and "arguments": the command line
// (without outputs) that makes this one image again. docs/metadata.md describes every field.
// maskgit-info prints it; --replay FILE re-runs it (same bytes on the same machine and build).
#include <string>
#include <vector>

#include "cli/options.h"
#include "io/json.h"
#include "model/model_dir.h"

namespace maskgit {

using RecordJson = Json;  // nlohmann::ordered_json, as everywhere (io/json.h)

constexpr const char* kImageRecordSchema = "maskgit-cpp.image/1";
// The PNG text keyword of the record.
constexpr const char* kImageRecordKeyword = "maskgit";
// The PNG text keyword of the class an image should show (read by maskgit-eval).
constexpr const char* kImageClassKeyword = "maskgit:class";

// A path as records hold it: absolute and normalised, without a trailing '/', so that a replay
// finds the file from any folder and records it exactly as the first run did.
std::string record_path(const std::string& path);

struct ModelIdentity {
  std::string name;                // the directory's name
  std::string path;                // record_path of the directory (a hint: the hashes are the identity)
  std::string tokenizer_sha256;    // of tokenizer.safetensors
  std::string transformer_sha256;  // of transformer.safetensors ("" for a tokenizer-only model)
  RecordJson to_json() const;
};
// Hashes the model's weights files. Error(bad_input) naming a file that cannot be read.
ModelIdentity identify_model(const ModelConfig& config);

// {"path": record_path, "sha256": ...} of an input file. Error(bad_input) naming it.
RecordJson file_identity(const std::string& path);

// A new record: schema, tool, toolkit {version, commit}, model.
RecordJson new_image_record(Tool tool, const ModelIdentity& model);

// A number as the shortest text that reads back as the same double (for "arguments").
std::string exact_number(double value);

// The record in a PNG. Error(bad_input) naming the file when it cannot be read, holds no
// "maskgit" text, or holds one that is not a maskgit-cpp.image/1 record: more than 1 MiB, not
// JSON to parse_json (duplicate keys, nesting beyond kJsonMaxDepth), another schema, an unknown tool, a seed that is not a whole number, or
// "arguments" that are not a replay of the file (only the flags that decide what is made, each
// with a value that is not a flag, --model and --seed present, the seed and class equal to the
// record's, --num 1; never an output, --help or --replay).
RecordJson read_image_record(const std::string& path);

// run_tool's first step: when `args` (argv) hold --replay FILE, the command line that re-makes
// FILE: argv[0], the record's "arguments", then the user's other flags, which may only be
// -o/--output (required, but for maskgit-tokenize, whose subcommands require it themselves),
// --json, -m/--model, --device, -t/--threads, -b/--batch-size, -q/--quiet and -v/--verbose
// (Error(usage) naming any other, also a combined -qc4). Error(usage) when FILE was made by
// another tool, and Error(bad_input) when its record cannot be replayed. Without --replay, or for
// a tool without --replay (its parser then refuses the flag), `args` unchanged. Each call starts
// afresh: replayed_record() is the record of this call's --replay, or nullptr.
std::vector<std::string> expand_replay(Tool tool, const std::vector<std::string>& args);

// The record being replayed in this process (set by expand_replay), or nullptr.
const RecordJson* replayed_record();

// Before any work, in a replay: Error(bad_input) when `model`, or `input` (a file_identity; null
// for none), is not what the replayed record names. Does nothing outside a replay.
void check_replay_identity(const ModelIdentity& model, const RecordJson& input = RecordJson());
// The same for an edit's region (record "region"): Error(bad_input) naming the mask file whose
// SHA-256 differs, or the first field that does.
void check_replay_region(const RecordJson& region);

}  // namespace maskgit
