#include "cli/input_options.h"

#include <fmt/format.h>

#include "cli/common.h"
#include "common/error.h"
#include "io/image.h"

namespace maskgit {

void add_dataset_input_options(CLI::App& app, InputOptions& inputs, const std::string& default_split) {
  inputs.dataset.split = default_split;
  app.add_option("-d,--data", inputs.dataset.path, "Instead of files: an IDX directory/file or an image folder");
  app.add_option("--split", inputs.dataset.split, "IDX split: train or t10k")
      ->capture_default_str()
      ->check(CLI::IsMember({"train", "t10k"}));
  app.add_option("--limit", inputs.dataset.limit, "Only the first N dataset images (-1 = all)")->capture_default_str()->check(image_limit());
}

void add_fit_option(CLI::App& app, InputOptions& inputs, const std::string& own_size) {
  app.add_option("--fit", inputs.fit,
                 "Inputs of another size than the model's: none (" + own_size +
                     "), crop (the centred largest part of the model's aspect ratio, resized to the model's size), "
                     "resize (the whole image to the model's size). Masks and boxes are given in the input's pixels "
                     "and follow the same crop and resize; results have the model's size")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "crop", "resize"}));
}

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
