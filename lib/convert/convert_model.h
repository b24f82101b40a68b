#pragma once
// maskgit-convert's work: the release's two Flax checkpoints → one model directory
// (config.json + tokenizer.safetensors + transformer.safetensors), written all or nothing.
#include <functional>
#include <string>
#include <vector>
#include "model/model_dir.h"

namespace maskgit {

struct ConvertRequest {
  std::string tokenizer_path;    // e.g. tokenizer_imagenet256_checkpoint
  std::string transformer_path;  // e.g. maskgit_imagenet256_checkpoint
  std::string output_dir;        // the model directory to create
  std::string class_names_path;  // one name a line; empty: the classes are named by their ids
  bool overwrite = false;        // replace an existing model directory
};

struct ConvertReport {
  ModelConfig config;                       // as written (directory = the output directory)
  int64_t tokenizer_parameters = 0, transformer_parameters = 0;
  size_t tokenizer_arrays = 0, transformer_arrays = 0;
  // Where the inferred architecture differs from the release's official one at this image size
  // ("tokenizer.filters 32 (official 128)"); empty for the release's own checkpoints.
  std::vector<std::string> differences_from_official;
};

// Checks, before anything is read: the output directory must not exist, or be an empty
// directory, or (with overwrite) be a model directory holding nothing but config.json,
// tokenizer.safetensors and transformer.safetensors; not a symbolic link; its parent must exist
// or be creatable. Throws Error(io_error) naming `flag` otherwise.
void check_output_directory(const std::string& path, bool overwrite, const std::string& flag);

// Reads both checkpoints, infers and checks the configuration, converts every array of both
// stages (all checks done before anything is written), writes the model into a hidden
// temporary sibling directory and renames it into place (an existing directory replaced with
// overwrite is moved aside and removed only after the new one is in place). Nothing is left
// behind on failure, and the leftovers of conversions to the same destination that were killed
// are cleaned up first (an old model moved aside is put back if the destination is missing).
// The checkpoints are memory-mapped: a file truncated while it is being converted ends the
// process with SIGBUS. Throws Error(bad_input) naming the input file and path for a malformed
// checkpoint or class-names file, Error(io_error) for the output. `progress` receives short
// status lines ("tokenizer: 168 arrays, 54515587 parameters").
ConvertReport convert_release_model(const ConvertRequest& request,
                                    const std::function<void(const std::string&)>& progress = nullptr);

// Class names from a text file: one per line, exactly `count` of them, each valid UTF-8 of 1 to
// kMaxClassNameBytes bytes without control characters once a leading byte order mark and
// surrounding spaces, tabs and "\r" are removed (one final empty line is ignored). Names with
// commas are kept, but `-c` splits on commas, so such classes are selected by id. Throws
// Error(bad_input) naming the file and line.
constexpr size_t kMaxClassNameBytes = 1024;
std::vector<std::string> read_class_names(const std::string& path, int64_t count);

}  // namespace maskgit
