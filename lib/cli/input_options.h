#pragma once
// Where a tool's input images come from, defined once: image files, or a dataset
// (--data/--split/--limit) for batch runs and evaluations.
#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "data/dataset.h"

namespace maskgit {

struct InputOptions {
  std::vector<std::string> files;
  DatasetSpec dataset;
};

// --data, --split (default `default_split`), --limit. The files option differs between tools
// (positional for maskgit-tokenize, -i for the editing tools) and is added by the caller.
void add_dataset_input_options(CLI::App& app, InputOptions& inputs, const std::string& default_split);

// Error(usage) unless exactly one source is given; `files_flag` names the files option.
void require_one_input_source(const InputOptions& inputs, const std::string& files_flag);

// "FILE" for file inputs, "DATA[i]" for dataset images.
std::string input_source_name(const InputOptions& inputs, int64_t index);

}  // namespace maskgit
