#pragma once
// Where a tool's input images come from, defined once: image files, or a dataset
// (--data/--split/--limit) for batch runs and evaluations.
#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "cli/options.h"
#include "data/dataset.h"
#include "editing/canvas.h"

namespace maskgit {

struct InputOptions {
  std::vector<std::string> files;
  DatasetSpec dataset;
  std::string fit = "none";  // --fit (only where add_fit_option offers it)
};

// -d/--data, --split (default `default_split`), --limit, on `on` (a subcommand; default: the
// tool). The files option (-i/--input, and positional files where a tool takes them) is added
// by the caller.
void add_dataset_input_options(ToolOptions& cli, InputOptions& inputs, const std::string& default_split,
                               CLI::App* on = nullptr);

// --fit none|crop|resize: how inputs of another size than the model's are treated (the one policy
// for maskgit-inpaint, maskgit-edit and maskgit-tokenize).
void add_fit_option(ToolOptions& cli, InputOptions& inputs, CLI::App* on = nullptr);

// The inputs as a tool uses them: read (converted to `channels`), then fitted by --fit to
// model_width × model_height. With `one_size`, or with --fit none, every file must have the
// size of the first (Error(bad_input) naming the file); with crop or resize and !one_size, files
// of any size are each fitted as they are read.
struct FittedInputs {
  LabeledImages data;            // [N, C, H, W] in [0, 1], labels (-1 for files)
  int64_t input_width = 0;       // the first input's own size
  int64_t input_height = 0;
  FitGeometry geometry;          // how an input of that size became data's images
  FitMode fit = FitMode::none;
};
FittedInputs load_fitted_inputs(const InputOptions& inputs, int channels, int64_t model_width, int64_t model_height,
                                bool one_size);

// Error(usage) unless exactly one source is given; `files_flag` names the files option.
void require_one_input_source(const InputOptions& inputs, const std::string& files_flag);

// "FILE" for file inputs, "DATA[i]" for dataset images.
std::string input_source_name(const InputOptions& inputs, int64_t index);

}  // namespace maskgit
