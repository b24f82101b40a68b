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

void add_editing_options(ToolOptions& cli, EditingCliOptions& options, ClassUse class_use, InputUse input_use) {
  options.input_use = input_use;
  add_model_option(cli, options.model_dir);
  cli.add_no_default("input", options.inputs.files);
  add_dataset_input_options(cli, options.inputs, "t10k");
  if (input_use == InputUse::edit_in_place) add_fit_option(cli, options.inputs);
  CLI::Option* class_option = cli.add_no_default("class", options.class_word);
  if (class_use == ClassUse::required) class_option->required();
  cli.add("num", options.variants);
  cli.add("seed", options.seed);
  cli.add("output", options.output);
  cli.add_flag("json", options.json);
  cli.add_no_default("save_mask", options.save_mask);
  cli.add_no_default("grid", options.grid);
  cli.add("grid_scale", options.grid_scale);
  cli.add("dilate", options.dilate);
  if (input_use == InputUse::edit_in_place) cli.add("feather", options.feather);
  cli.add("batch_size", options.batch_size);
  add_sampler_options(cli, options.sampler);
  add_runtime_options(cli, options.runtime);
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

void run_editing_tool(Tool tool_id, const EditingCliOptions& options, const PrepareEdit& prepare) {
  const std::string tool = tool_name(tool_id);
  if (options.sampler.show_defaults) {
    // Nothing but the settings: no input, class or device needed.
    SamplerCliOptions resolved = options.sampler;
    const ModelConfig config = read_model_config(options.model_dir);
    decode_options_for_model(resolved, config);
    show_sampling_defaults(resolved, config, options.json);
    return;
  }
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
  EditDescription description;
  if (options.input_use == InputUse::edit_in_place) description.region["fit"] = options.inputs.fit;
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

  // The model's and each input file's identity (SHA-256), recorded in every result; in a replay,
  // checked against the file's record before any work.
  const ModelIdentity identity = identify_model(config);
  std::vector<RecordJson> input_identities;
  for (const std::string& file : options.inputs.files) input_identities.push_back(file_identity(file));
  check_replay_identity(identity, input_identities.empty() ? RecordJson() : input_identities.front());
  print_verbose("{}: model {} (tokenizer sha256 {}, transformer sha256 {})\n", tool, identity.path,
                identity.tokenizer_sha256, identity.transformer_sha256);
  description.region["regenerated_tokens"] = plan.regenerated_tokens;
  description.region["tokens"] = plan.tokens;
  description.region["windows"] = plan.windows;
  check_replay_region(description.region);
  RecordJson settings = sampler_settings(decode, dtype, device);
  settings["dilate"] = options.dilate;
  settings["feather"] = setup.feather_radius;
  // The flags that re-make one result, whatever the input (its path and seed are added per result).
  std::vector<std::string> shared_arguments{"--model", identity.path, "--num", "1"};
  if (class_id >= 0) shared_arguments.insert(shared_arguments.end(), {"--class", std::to_string(class_id)});
  shared_arguments.insert(shared_arguments.end(), {"--dilate", std::to_string(options.dilate)});
  if (options.input_use == InputUse::edit_in_place)
    shared_arguments.insert(shared_arguments.end(), {"--fit", options.inputs.fit, "--feather", options.feather});
  shared_arguments.insert(shared_arguments.end(), description.arguments.begin(), description.arguments.end());
  const std::vector<std::string> sampler_args = sampler_arguments(sampler, dtype);
  shared_arguments.insert(shared_arguments.end(), sampler_args.begin(), sampler_args.end());
  RecordJson head = new_image_record(tool_id, identity);  // for the mask picture and the grid
  head["region"] = description.region;
  head["settings"] = settings;
  head["replayable"] = "a picture of the region or a grid: replay the results one by one";
  if (!options.save_mask.empty())
    write_png(options.save_mask, token_mask_picture(plan.token_mask, inputs.factor, height, width),
              {{kImageRecordKeyword, dump_json(head)}});

  const std::vector<int64_t> input_classes(static_cast<size_t>(input_count), class_id);
  std::vector<torch::Tensor> results;
  ProgressCounter progress(tool + ": results", total);
  run_edits(tokenizer, transformer, setup, plan, input_classes, options.variants, options.seed, decode,
            options.batch_size, device, [&](int64_t begin, const torch::Tensor&, const torch::Tensor& images) {
    for (int64_t i = begin; i < begin + images.size(0); ++i) {
      const int64_t source = i / options.variants;
      const int64_t label = data.labels[source].item<int64_t>();
      const uint64_t seed = options.seed + static_cast<uint64_t>(i);
      RecordJson record = new_image_record(tool_id, identity);
      if (options.inputs.files.empty()) {
        record["input"] = {{"data", options.inputs.dataset.path},
                           {"split", options.inputs.dataset.split},
                           {"index", source},
                           {"label", label}};
        record["replayable"] = "made from a dataset image: replays take image files (-i)";
      } else {
        record["input"] = input_identities[static_cast<size_t>(source)];
      }
      record["input"]["width"] = fitted.input_width;
      record["input"]["height"] = fitted.input_height;
      record["seed"] = seed;
      record["class"] = class_id >= 0 ? RecordJson(class_id) : RecordJson();
      record["class_name"] = class_id >= 0 ? RecordJson(config.class_names[static_cast<size_t>(class_id)]) : RecordJson();
      record["region"] = description.region;
      record["settings"] = settings;
      if (!options.inputs.files.empty()) {
        std::vector<std::string> arguments{"--input", input_identities[static_cast<size_t>(source)]["path"],
                                           "--seed", std::to_string(seed)};
        arguments.insert(arguments.end(), shared_arguments.begin(), shared_arguments.end());
        record["arguments"] = arguments;
      }
      std::string path;
      if (!options.output.empty()) {
        path = format_output_path(options.output, i);
        std::map<std::string, std::string> text{{kImageRecordKeyword, dump_json(record)}};
        // The class the result should show: the target, else the input's known label, so that
        // maskgit-eval can judge edits of labelled data.
        const int64_t shown_class = class_id >= 0 ? class_id : label;
        if (shown_class >= 0) text[kImageClassKeyword] = std::to_string(shown_class);
        write_png(path, images[i - begin], text);
      }
      if (options.json) {
        RecordJson line = RecordJson::object();
        line["file"] = path.empty() ? RecordJson() : RecordJson(path);
        line["index"] = i;
        line["variant"] = i % options.variants;
        line.update(record);
        print_stdout("{}\n", dump_json(line));
      }
    }
    if (!options.grid.empty()) results.push_back(images);
    progress.update(begin + images.size(0));
  });
  if (!options.grid.empty())
    write_png(options.grid,
              comparison_grid(setup, plan, torch::cat(results), options.variants, inputs.factor, options.grid_scale),
              {{kImageRecordKeyword, dump_json(head)}});
}

}  // namespace maskgit
