#include "cli/editing_tool.h"
#include "common/console.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>

#include "cli/progress.h"
#include "common/error.h"
#include "editing/region.h"
#include "generation/sampler.h"
#include "io/atomic_file.h"
#include "io/image.h"
#include "tokenizer/pipeline.h"

namespace maskgit {

void add_editing_options(CLI::App& app, EditingCliOptions& options, ClassUse class_use, InputUse input_use) {
  options.input_use = input_use;
  add_model_option(app, options.model_dir);
  auto* input = app.add_option_group("Input");
  input->add_option("-i,--input", options.inputs.files, "Input image (PNG/JPEG); repeat for several, all of one size");
  add_dataset_input_options(*input, options.inputs, "t10k");
  if (input_use == InputUse::edit_in_place)
    add_fit_option(*input, options.inputs,
                   "edit each image at its own size, at least the model's; larger ones are decoded in overlapping "
                   "windows of the model's token grid");
  if (class_use == ClassUse::required) {
    app.add_option("-c,--class", options.class_word, "Target class, by id or name (case-insensitive)")->required()->check(non_empty());
  } else {
    app.add_option("-c,--class", options.class_word,
                   "Class to decode with, by id or name; without it the region is decoded unconditionally, with the "
                   "model's \"no class\" token")
        ->check(non_empty());
  }
  auto* output = app.add_option_group("Output");
  output->add_option("-n,--variants", options.variants, "Results per input, each with its own seed")
      ->capture_default_str()->check(CLI::Range(1, 100000));
  output->add_option("-s,--seed", options.seed,
                     "Seed of the first result; result i (input i/n, variant i%n) uses seed + i")
      ->capture_default_str()->check(seed_value());
  output->add_option("-o,--output", options.output,
                     "Output PNG pattern with one %d (the result index; optional for a single result); \"\" = none")
      ->capture_default_str();
  output->add_flag("--json", options.json, "One JSON line per result on stdout: file, input, seed, class, settings");
  output->add_option("--save-mask", options.save_mask,
                     "Also write the regenerated tokens as a picture at image size (white = regenerated; "
                     "usable as a --mask)");
  output->add_option("--grid", options.grid,
                     "Also write one comparison picture: per input a row of input, regenerated tokens (red), results");
  output->add_option("--grid-scale", options.grid_scale, "Enlargement of each image in --grid")
      ->capture_default_str()->check(CLI::Range(1, 32));
  auto* region = app.add_option_group("Region");
  region->add_option("--dilate", options.dilate, "Grow the regenerated tokens by K tokens on every side")
      ->capture_default_str()->check(CLI::Range(0, 1024));
  if (input_use == InputUse::edit_in_place)
    region->add_option("--feather", options.feather,
                       "Blend radius (Gaussian σ, pixels) of the composite; auto = the release's S/16 - 1 with S the "
                       "model's image side (the shorter one), whatever the image's size: 15 at 256, 31 at 512, 0 at "
                       "28 (hard token edges)")
        ->capture_default_str();
  app.add_option("-b,--batch-size", options.batch_size, "Results decoded together (does not change them)")
      ->capture_default_str()->check(CLI::Range(1, 65536));
  add_sampler_options(app, options.sampler);
  add_runtime_options(app, options.runtime);
}

namespace {

double parse_feather(const std::string& text, int64_t height, int64_t width) {
  if (text == "auto") return default_feather_radius(height, width);
  char* end = nullptr;
  const double radius = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(radius) || radius < 0 || radius > 1000)
    throw_usage(fmt::format("--feather: \"{}\" is not auto or a radius in pixels (0..1000)", text));
  return radius;
}

// One comparison row per input: the input (grey where nothing is known), the regenerated
// token cells tinted red over it, then its results.
torch::Tensor comparison_grid(const EditSetup& setup, const EditPlan& plan, const torch::Tensor& results,
                              int64_t variants, int64_t factor, int64_t scale) {
  const int64_t height = setup.images.size(2), width = setup.images.size(3);
  torch::Tensor inputs = convert_channels(setup.images, 3);
  if (setup.known_pixels.defined())
    inputs = torch::where(setup.known_pixels, inputs, torch::full_like(inputs, 0.5f));
  const torch::Tensor cells = token_mask_picture(plan.token_mask, factor, height, width) > 0.5f;
  const torch::Tensor red = torch::tensor({1.0f, 0.0f, 0.0f}).view({1, 3, 1, 1});
  const torch::Tensor tinted = torch::where(cells, 0.5f * inputs + 0.5f * red, inputs);
  const torch::Tensor outputs = convert_channels(results, 3);
  std::vector<torch::Tensor> tiles;
  for (int64_t i = 0; i < setup.images.size(0); ++i) {
    tiles.push_back(inputs[i]);
    tiles.push_back(tinted[i]);
    for (int64_t v = 0; v < variants; ++v) tiles.push_back(outputs[i * variants + v]);
  }
  return tile_images(torch::stack(tiles), variants + 2, 2, scale);
}

}  // namespace

void run_editing_tool(const std::string& tool, const EditingCliOptions& options, const PrepareEdit& prepare) {
  require_one_input_source(options.inputs, "-i/--input");
  const torch::Device device = apply_runtime_options(options.runtime);
  const ModelConfig config = read_model_config(options.model_dir);
  if (!config.tokenizer || !config.transformer)
    throw_bad_input(fmt::format("{}: the model needs a tokenizer and a transformer", config.path_of(kModelConfigFile)));
  // The model's decoding defaults for the sampler flags not given; what it cannot do, refused now.
  SamplerCliOptions sampler = options.sampler;
  const DecodeOptions decode = decode_options_for_model(sampler, config);
  int64_t class_id = -1;
  if (!options.class_word.empty()) {
    class_id = resolve_classes(config, {options.class_word}).front();
  } else if (!config.transformer->no_class_token) {
    throw_usage("--class: this model has no \"no class\" token (as the release's models), so it cannot decode "
                "without a class: give -c/--class");
  }
  // The auto feather follows the model's scale (its own image size), not the input's.
  const double feather_radius = options.input_use == InputUse::canvas
                                    ? 0.0
                                    : parse_feather(options.feather, config.image_height, config.image_width);

  const std::string source_name =
      options.inputs.files.empty() ? options.inputs.dataset.path : options.inputs.files.front();
  const FittedInputs fitted = load_fitted_inputs(options.inputs, static_cast<int>(config.image_channels),
                                                 config.image_width, config.image_height, /*one_size=*/true);
  const LabeledImages& data = fitted.data;
  if (options.input_use == InputUse::edit_in_place &&
      (data.images.size(3) < config.image_width || data.images.size(2) < config.image_height))
    throw_bad_input(fmt::format("{}: the image is {}x{}, smaller than the model's {}x{} (give --fit crop or --fit "
                                "resize to scale it to the model's size)",
                                source_name, data.images.size(3), data.images.size(2), config.image_width,
                                config.image_height));
  EditingInputs inputs;
  inputs.images = data.images;
  inputs.factor = config.tokenizer->downsample_factor();
  inputs.model_width = config.image_width;
  inputs.model_height = config.image_height;
  inputs.input_width = fitted.input_width;
  inputs.input_height = fitted.input_height;
  inputs.geometry = fitted.geometry;
  Json description = Json::object();
  if (options.input_use == InputUse::edit_in_place) {
    description.set("fit", options.inputs.fit);
    if (!fitted.geometry.is_identity(fitted.input_width, fitted.input_height))
      description.set("input_size", fmt::format("{}x{}", fitted.input_width, fitted.input_height));
  }
  EditSetup setup = prepare(inputs, description);
  const int64_t height = setup.images.size(2), width = setup.images.size(3);
  check_tokenizer_image_size(config, width, height, source_name);
  setup.dilate = options.dilate;
  setup.feather_radius = feather_radius;
  const EditPlan plan = plan_edit(setup, inputs.factor, *config.transformer);
  if (plan.regenerated_tokens == 0) {
    if (!fitted.geometry.is_identity(fitted.input_width, fitted.input_height) &&
        (fitted.geometry.crop_width < fitted.input_width || fitted.geometry.crop_height < fitted.input_height))
      throw_bad_input(fmt::format("the region is empty after --fit {} (it keeps {}x{} pixels at {},{} of the input): "
                                  "nothing to regenerate",
                                  options.inputs.fit, fitted.geometry.crop_width, fitted.geometry.crop_height,
                                  fitted.geometry.crop_x, fitted.geometry.crop_y));
    throw_bad_input("the region is empty: nothing to regenerate");
  }

  const int64_t input_count = setup.images.size(0);
  const int64_t total = input_count * options.variants;
  if (options.output.empty() && !options.json && options.grid.empty() && options.save_mask.empty())
    throw_usage("--output: empty, and no --json, --grid or --save-mask: nothing would be produced");
  check_seed_range(options.seed, total, "--seed");
  if (!options.grid.empty())
    check_grid_size(input_count * (options.variants + 2), options.variants + 2, height, width, options.grid_scale);
  const torch::ScalarType dtype = forward_dtype(sampler, device);
  // The model is loaded (and validated) first, so that a bad model leaves no folder behind;
  // then every destination is checked (and its folder made) before any work.
  VQTokenizer tokenizer = load_tokenizer(config, device);
  BidirectionalTransformer transformer = load_transformer(config, device, dtype);
  if (!options.output.empty()) prepare_output_pattern(options.output, total, "--output");
  if (!options.grid.empty()) prepare_output_file(options.grid, "--grid");
  if (!options.save_mask.empty()) prepare_output_file(options.save_mask, "--save-mask");

  Json settings = decode_settings_json(decode, dtype);
  settings.set("dilate", options.dilate);
  settings.set("feather", setup.feather_radius);
  description.set("tool", tool);
  description.set("model", options.model_dir);
  description.set("regenerated_tokens", plan.regenerated_tokens);
  description.set("tokens", plan.tokens);
  description.set("windows", plan.windows);
  description.set("settings", settings);
  if (!options.save_mask.empty())
    write_png(options.save_mask, token_mask_picture(plan.token_mask, inputs.factor, height, width),
              {{"maskgit", description.dump()}});

  const std::vector<int64_t> input_classes(static_cast<size_t>(input_count), class_id);
  std::vector<torch::Tensor> results;
  ProgressCounter progress(tool + ": results", total);
  run_edits(tokenizer, transformer, setup, plan, input_classes, options.variants, options.seed, decode,
            options.batch_size, device, [&](int64_t begin, const torch::Tensor&, const torch::Tensor& images) {
    for (int64_t i = begin; i < begin + images.size(0); ++i) {
      const int64_t source = i / options.variants;
      const int64_t label = data.labels[source].item<int64_t>();
      Json record = Json::object();
      record.set("input", input_source_name(options.inputs, source));
      record.set("variant", i % options.variants);
      record.set("seed", options.seed + static_cast<uint64_t>(i));
      record.set("class", class_id >= 0 ? Json(class_id) : Json());
      record.set("class_name", class_id >= 0 ? Json(config.class_names[static_cast<size_t>(class_id)]) : Json());
      if (label >= 0) record.set("label", label);
      for (const auto& [key, value] : description.as_object()) record.set(key, value);
      std::string path;
      if (!options.output.empty()) {
        path = format_output_path(options.output, i);
        std::map<std::string, std::string> text{{"maskgit", record.dump()}};
        // The class the result should show: the target, else the input's known label, so that
        // maskgit-eval can judge edits of labelled data.
        const int64_t shown_class = class_id >= 0 ? class_id : label;
        if (shown_class >= 0) text["maskgit:class"] = std::to_string(shown_class);
        write_png(path, images[i - begin], text);
      }
      if (options.json) {
        Json line = Json::object();
        line.set("file", path.empty() ? Json() : Json(path));
        line.set("index", i);
        for (const auto& [key, value] : record.as_object()) line.set(key, value);
        print_stdout("{}\n", line.dump());
      }
    }
    if (!options.grid.empty()) results.push_back(images);
    progress.update(begin + images.size(0));
  });
  if (!options.grid.empty())
    write_png(options.grid,
              comparison_grid(setup, plan, torch::cat(results), options.variants, inputs.factor, options.grid_scale),
              {{"maskgit", description.dump()}});
}

}  // namespace maskgit
