#include "cli/input_options.h"

#include <fmt/format.h>

#include "cli/common.h"
#include "common/error.h"

namespace maskgit {

void add_dataset_input_options(CLI::App& app, InputOptions& inputs, const std::string& default_split) {
  inputs.dataset.split = default_split;
  app.add_option("-d,--data", inputs.dataset.path, "Instead of files: an IDX directory/file or an image folder");
  app.add_option("--split", inputs.dataset.split, "IDX split: train or t10k")
      ->capture_default_str()
      ->check(CLI::IsMember({"train", "t10k"}));
  app.add_option("--limit", inputs.dataset.limit, "Only the first N dataset images (-1 = all)")->capture_default_str()->check(image_limit());
}

void require_one_input_source(const InputOptions& inputs, const std::string& files_flag) {
  if (inputs.files.empty() && inputs.dataset.path.empty())
    throw_usage(fmt::format("no input: give {} or --data", files_flag));
  if (!inputs.files.empty() && !inputs.dataset.path.empty())
    throw_usage(fmt::format("give {} or --data, not both", files_flag));
}

std::string input_source_name(const InputOptions& inputs, int64_t index) {
  if (!inputs.files.empty()) return inputs.files.at(static_cast<size_t>(index));
  return fmt::format("{}[{}]", inputs.dataset.path, index);
}

}  // namespace maskgit
