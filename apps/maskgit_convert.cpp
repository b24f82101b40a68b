// maskgit-convert: the release's Flax checkpoints → a model directory the other tools run.
#include <fmt/format.h>

#include <chrono>

#include "cli/common.h"
#include "cli/options.h"
#include "common/console.h"
#include "convert/convert_model.h"
#include "io/json.h"

int main(int argc, char** argv) {
  using namespace maskgit;
  CLI::App app{"Convert google-research/maskgit's released checkpoints (Flax msgpack files such as\n"
               "tokenizer_imagenet256_checkpoint and maskgit_imagenet256_checkpoint) into a model directory\n"
               "(config.json + safetensors) for maskgit-sample, -inpaint, -outpaint, -edit and -tokenize.\n"
               "The architecture is inferred from the arrays' shapes; every array must map to exactly one\n"
               "parameter. Nothing is written unless everything converts.",
               "maskgit-convert"};
  ConvertRequest request;
  bool json_output = false;
  ToolOptions cli(app, Tool::convert);
  cli.add_no_default("tokenizer_checkpoint", request.tokenizer_path)->required();
  cli.add_no_default("transformer_checkpoint", request.transformer_path)->required();
  cli.add_no_default("model_output", request.output_dir)->required();
  cli.add_no_default("class_names", request.class_names_path);
  cli.add_flag("overwrite", request.overwrite);
  cli.add_flag("json", json_output);

  return run_tool(cli, argc, argv, [&] {
    const bool quiet = verbosity() == Verbosity::quiet;
    const auto started = std::chrono::steady_clock::now();
    const ConvertReport report = convert_release_model(request, [&](const std::string& line) {
      if (!quiet) print_stderr("maskgit-convert: {}\n", line);
    });
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const ModelConfig& config = report.config;
    if (json_output) {
      Json out = Json::object();
      out["model"] = config.directory;
      out["image_width"] = config.image_width;
      out["image_height"] = config.image_height;
      out["tokenizer"] = config.tokenizer->to_json();
      out["transformer"] = config.transformer->to_json();
      out["tokenizer_parameters"] = report.tokenizer_parameters;
      out["transformer_parameters"] = report.transformer_parameters;
      out["tokenizer_arrays"] = static_cast<int64_t>(report.tokenizer_arrays);
      out["transformer_arrays"] = static_cast<int64_t>(report.transformer_arrays);
      Json differences = Json::array();
      for (const auto& difference : report.differences_from_official) differences.push_back(difference);
      out["differences_from_official"] = differences;
      out["seconds"] = seconds;
      print_stdout("{}\n", dump_json(out));
    } else {
      print_stdout("{}: {}x{} {}, {} classes, {}x{} tokens, codebook {}; {} + {} parameters ({:.1f} s)\n",
                   config.directory, config.image_width, config.image_height,
                   config.image_channels == 3 ? "RGB" : "grey", config.num_classes(), config.transformer->grid_width,
                   config.transformer->grid_height, config.tokenizer->codebook_size, report.tokenizer_parameters,
                   report.transformer_parameters, seconds);
      if (report.differences_from_official.empty())
        print_stdout("architecture: the release's official ImageNet configuration\n");
      else
        print_stdout("architecture differs from the release's official one: {}\n",
                     fmt::join(report.differences_from_official, ", "));
    }
  });
}
