#include "cli/input_options.h"

#include <fmt/format.h>

#include "cli/common.h"
#include "common/error.h"
#include "io/image.h"

namespace maskgit {

void add_dataset_input_options(ToolOptions& cli, InputOptions& inputs, const std::string& default_split,
                               CLI::App* on) {
  inputs.dataset.split = default_split;
  cli.add_no_default("data", inputs.dataset.path, on);
  cli.add("split", inputs.dataset.split, on);
  cli.add("limit", inputs.dataset.limit, on);
}

void add_fit_option(ToolOptions& cli, InputOptions& inputs, CLI::App* on) { cli.add("fit", inputs.fit, on); }

FittedInputs load_fitted_inputs(const InputOptions& inputs, int channels, int64_t model_width, int64_t model_height,
                                bool one_size) {
  FittedInputs out;
  out.fit = parse_fit_mode(inputs.fit);
  if (inputs.files.empty()) {
    DatasetSpec spec = inputs.dataset;
    spec.channels = channels;
    out.data = load_dataset(spec);
    out.input_width = out.data.images.size(3);
    out.input_height = out.data.images.size(2);
    out.geometry = fit_geometry(out.input_width, out.input_height, model_width, model_height, out.fit);
    out.data.images = fit_images(out.data.images, out.geometry);
    return out;
  }
  const bool same_size = one_size || out.fit == FitMode::none;
  std::vector<torch::Tensor> images;
  for (const auto& file : inputs.files) {
    const int expected_width = same_size && !images.empty() ? static_cast<int>(out.input_width) : 0;
    const int expected_height = same_size && !images.empty() ? static_cast<int>(out.input_height) : 0;
    const torch::Tensor image = read_image_as(file, channels, expected_width, expected_height);
    if (images.empty()) {
      out.input_width = image.size(2);
      out.input_height = image.size(1);
      out.geometry = fit_geometry(out.input_width, out.input_height, model_width, model_height, out.fit);
    }
    images.push_back(fit_images(image, fit_geometry(image.size(2), image.size(1), model_width, model_height, out.fit)));
  }
  out.data.images = torch::stack(images);
  out.data.labels = torch::full({out.data.images.size(0)}, -1, torch::kLong);
  return out;
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
