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
// directory, or (with overwrite) be a model directory (it holds config.json); not a symbolic
// link; its parent must exist or be creatable. Throws Error(io_error) naming `flag` otherwise.
void check_output_directory(const std::string& path, bool overwrite, const std::string& flag);

// Reads both checkpoints, infers and checks the configuration, converts every array, writes the
// model into a temporary sibling directory and renames it into place (an existing directory
// replaced with overwrite is removed only after the new one is in place). Nothing is left
// behind on failure. Throws Error(bad_input) naming the input file and path for a malformed
// checkpoint or class-names file, Error(io_error) for the output. `progress` receives short
// status lines ("tokenizer: 168 arrays, 54515587 parameters").
ConvertReport convert_release_model(const ConvertRequest& request,
                                    const std::function<void(const std::string&)>& progress = nullptr);

// Class names from a text file: one per line (UTF-8; trailing "\r" and one final empty line
// ignored), each non-empty and without control characters, exactly `count` of them. Throws
// Error(bad_input) naming the file and line.
std::vector<std::string> read_class_names(const std::string& path, int64_t count);

}  // namespace maskgit
