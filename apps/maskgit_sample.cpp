// maskgit-sample: class-conditional generation with confidence-based parallel decoding.
#include <fmt/format.h>

#include "common/console.h"
#include "cli/common.h"
#include "cli/image_record.h"
#include "cli/options.h"
#include "cli/progress.h"
#include "cli/sampler_options.h"
#include "common/error.h"
#include "generation/sampler.h"
#include "io/atomic_file.h"
#include "io/image.h"
#include "model/model_dir.h"
#include "tokenizer/token_file.h"

int main(int argc, char** argv) {
  using namespace maskgit;
  CLI::App app{"Generate images of given classes: start from an all-[MASK] token grid, predict every token at\n"
               "once, keep the most confident, re-mask the rest along the schedule, and decode the grid to pixels.\n"
               "Image i of a run depends only on (seed + i) and the settings, whatever the batch size.",
               "maskgit-sample"};
  std::string model_dir;
  RuntimeOptions runtime;
  SamplerCliOptions sampler;
  std::vector<std::string> class_words;
  int64_t per_class = 1;
  uint64_t seed = 0;
  int64_t batch_size = 64;
  std::string output = "samples/%05d.png";
  std::string grid_output, tokens_output;
  int64_t grid_scale = 2;
  bool json_output = false;
  ToolOptions cli(app, Tool::sample);
  add_model_option(cli, model_dir);
  cli.add_no_default("class", class_words)->delimiter(',');
  cli.add("num", per_class);
  cli.add("seed", seed);
  cli.add("batch_size", batch_size);
  cli.add("output", output);
  cli.add_no_default("grid", grid_output);
  cli.add("grid_scale", grid_scale);
  cli.add_no_default("save_tokens", tokens_output);
  cli.add_flag("json", json_output);
  add_sampler_options(cli, sampler);
  add_runtime_options(cli, runtime);

  return run_tool(cli, argc, argv, [&] {
    const torch::Device device = apply_runtime_options(runtime);
    const ModelConfig config = read_model_config(model_dir);
    // The model's decoding defaults for the flags not given; what it cannot do, refused now.
    const DecodeOptions decode = decode_options_for_model(sampler, config);
    if (show_sampling_defaults(sampler, config, json_output)) return;
    std::vector<int64_t> classes;
    if (class_words.empty()) {
      for (int64_t c = 0; c < config.num_classes(); ++c) classes.push_back(c);
    } else {
      classes = resolve_classes(config, class_words);
    }
    const int64_t total = static_cast<int64_t>(classes.size()) * per_class;
    if (output.empty() && grid_output.empty() && tokens_output.empty() && !json_output)
      throw_usage("--output: empty, and no --grid, --save-tokens or --json: nothing would be produced");
    check_seed_range(seed, total, "--seed");
    if (!grid_output.empty()) check_grid_size(total, per_class, config.image_height, config.image_width, grid_scale);
    const torch::ScalarType dtype = forward_dtype(sampler, device);
    // The model is loaded (and validated) first, so that a bad model leaves no folder behind;
    // then every destination is checked (and its folder made) before any work.
    VQTokenizer tokenizer = load_tokenizer(config, device);
    BidirectionalTransformer transformer = load_transformer(config, device, dtype);
    const ModelIdentity identity = identify_model(config);
    check_replay_identity(identity);
    print_verbose("maskgit-sample: model {} (tokenizer sha256 {}, transformer sha256 {})\n", identity.path,
                  identity.tokenizer_sha256, identity.transformer_sha256);
    if (!output.empty()) prepare_output_pattern(output, total, "--output");
    if (!grid_output.empty()) prepare_output_file(grid_output, "--grid");
    if (!tokens_output.empty()) prepare_output_file(tokens_output, "--save-tokens");
    const TransformerConfig& shape = transformer->config();

    std::vector<int64_t> image_classes;
    std::vector<uint64_t> image_seeds;
    for (int64_t c : classes)
      for (int64_t k = 0; k < per_class; ++k) {
        image_seeds.push_back(seed + image_classes.size());
        image_classes.push_back(c);
      }
    const RecordJson settings = sampler_settings(decode, dtype, device);
    const std::vector<std::string> sampler_args = sampler_arguments(sampler, dtype);
    std::vector<torch::Tensor> all_ids, all_images;
    ProgressCounter progress("sampled", total);
    generate_images(transformer, tokenizer, config.image_height, config.image_width, image_classes, image_seeds, decode,
                    batch_size, device, [&](int64_t begin, const torch::Tensor& ids, const torch::Tensor& images) {
      for (int64_t i = begin; i < begin + images.size(0); ++i) {
        const auto index = static_cast<size_t>(i);
        const int64_t class_id = image_classes[index];
        RecordJson record = new_image_record(Tool::sample, identity);
        record["class"] = class_id;
        record["class_name"] = config.class_names[static_cast<size_t>(class_id)];
        record["seed"] = image_seeds[index];
        record["settings"] = settings;
        std::vector<std::string> arguments{"--model", identity.path, "--class", std::to_string(class_id), "--num", "1",
                                           "--seed", std::to_string(image_seeds[index])};
        arguments.insert(arguments.end(), sampler_args.begin(), sampler_args.end());
        record["arguments"] = arguments;
        std::string path;
        if (!output.empty()) {
          path = format_output_path(output, i);
          write_png(path, images[i - begin],
                    {{kImageRecordKeyword, dump_json(record)}, {kImageClassKeyword, std::to_string(class_id)}});
        }
        if (json_output) {
          RecordJson line = RecordJson::object();
          line["file"] = path.empty() ? RecordJson() : RecordJson(path);
          line["index"] = i;
          line.update(record);
          print_stdout("{}\n", dump_json(line));
        }
      }
      if (!grid_output.empty()) all_images.push_back(images);
      if (!tokens_output.empty()) all_ids.push_back(ids.view({-1, shape.grid_height, shape.grid_width}));
      progress.update(begin + images.size(0));
    });
    if (!grid_output.empty()) {
      RecordJson record = new_image_record(Tool::sample, identity);
      record["seed"] = seed;
      record["settings"] = settings;
      record["replayable"] = "a grid: replay its images one by one";
      write_png(grid_output, tile_images(torch::cat(all_images), per_class, 2, grid_scale),
                {{kImageRecordKeyword, dump_json(record)}});
    }
    if (!tokens_output.empty()) {
      TokenGrid grid;
      grid.ids = torch::cat(all_ids);
      grid.labels = torch::tensor(image_classes, torch::kLong);
      grid.image_height = config.image_height;
      grid.image_width = config.image_width;
      grid.codebook_size = shape.codebook_size;
      write_token_file(tokens_output, grid);
    }
  });
}
