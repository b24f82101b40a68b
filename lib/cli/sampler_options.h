#pragma once
// Sampler flags shared by maskgit-sample, the editing tools and maskgit-eval, defined once, and
// how they meet a model: the model's decoding defaults (config.json "sampling") for the flags
// the user did not pass, and the flags a model cannot honour, refused before any work.
#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "cli/image_record.h"
#include "cli/options.h"
#include "decoding/decoder.h"
#include "model/model_dir.h"

namespace maskgit {

// Which of the model's defaults a tool takes: generation (steps) or class-conditional editing
// (edit_steps, edit_start_step). Schedule and choice temperature are shared.
enum class SamplingUse { generation, editing };

struct SamplerCliOptions {
  // The tool's own defaults (SamplingDefaults' values; maskgit-edit: 12 steps from step 2),
  // used when neither the user nor the model gives a value.
  int64_t steps = 8;
  int64_t start_step = 0;
  std::string schedule = "cosine";
  double choice_temperature = 4.5;
  double temperature = 1.0;
  int64_t top_k = 0;
  double cfg_scale = 1.0;
  std::string cfg_schedule = "constant";
  std::string order = "confidence";
  std::string dtype = "auto";
  SamplingUse use = SamplingUse::generation;

  // Set by add_sampler_options, read after parsing: whether the user passed the flag.
  const CLI::Option* steps_flag = nullptr;
  const CLI::Option* start_step_flag = nullptr;
  const CLI::Option* schedule_flag = nullptr;
  const CLI::Option* choice_temperature_flag = nullptr;
  const CLI::Option* temperature_flag = nullptr;
  const CLI::Option* cfg_scale_flag = nullptr;
  const CLI::Option* cfg_schedule_flag = nullptr;
  const CLI::Option* top_k_flag = nullptr;
  const CLI::Option* order_flag = nullptr;
  const CLI::Option* dtype_flag = nullptr;
  // --release-defaults: the model's "sampling" section is ignored (the tools' own defaults are
  // the release's behaviour). --show-defaults: print the resolved settings and stop.
  bool release_defaults = false;
  bool show_defaults = false;
  // Set by apply_model_sampling_defaults: where the values of --steps and --start-step came
  // from when the user did not pass them (for messages), e.g. "the model's sampling.edit_steps".
  std::string steps_origin = "the tool's default";
  std::string start_step_origin = "the tool's default";
  std::string schedule_origin = "the tool's default", choice_temperature_origin = "the tool's default",
              temperature_origin = "the tool's default", cfg_scale_origin = "the tool's default",
              cfg_schedule_origin = "the tool's default";
};

// --steps, --start-step, --schedule, --choice-temperature, --temperature, --top-k,
// --cfg-scale, --cfg-schedule, --order, --dtype, --release-defaults, --show-defaults. `options.use` and the values in `options` (the tool's own
// defaults) must be set before the call; --help says that the model's defaults come first.
void add_sampler_options(ToolOptions& cli, SamplerCliOptions& options);
// --dtype alone (for tools without the other sampler options, such as the benchmark).
void add_dtype_option(ToolOptions& cli, std::string& dtype);

// After parsing and reading the model: each of --steps, --start-step, --schedule,
// --choice-temperature, --temperature, --cfg-scale and --cfg-schedule the user did not pass
// takes the model's default (config.sampling) when the model has one and --release-defaults was
// not given (--start-step only when editing: generation starts at step 0; --cfg-scale and
// --cfg-schedule from guidance_scale and guidance_schedule, or edit_guidance_scale and
// edit_guidance_schedule when editing). Never in a --replay: the record gives every sampler flag
// there was when it was made, and one added since takes the tool's default, as it had then.
void apply_model_sampling_defaults(SamplerCliOptions& options, const ModelConfig& config);
// --show-defaults: prints the resolved decoding settings (after apply_model_sampling_defaults),
// each with where it came from (the flag, the model's config.json, or the tool), on stdout, as
// one JSON object with `json`; returns whether it did (the tool then stops, having done nothing).
bool show_sampling_defaults(const SamplerCliOptions& options, const ModelConfig& config, bool json);
// Whether the command line asks for --show-defaults: the editing tools then stop requiring the
// options that only the edit itself needs (--box, --mask, -c/--class), before parsing.
bool show_defaults_requested(int argc, const char* const* argv);
// Before any work: Error(usage) naming the flag for what the model cannot do (--cfg-scale
// without a "no class" token, the release's case).
void check_sampler_for_model(const SamplerCliOptions& options, const TransformerConfig& transformer);
// Both of the above, then to_decode_options: what a tool calls once it has read its model.
DecodeOptions decode_options_for_model(SamplerCliOptions& options, const ModelConfig& config);

// Validates the combination; Error(usage) naming the flag (and where a value the user did not
// pass came from).
DecodeOptions to_decode_options(const SamplerCliOptions& options);
// --dtype resolved for `device`: auto is bfloat16 on CUDA GPUs with native bf16 (compute
// capability 8.0 on) and float32 elsewhere; fp16 needs CUDA (LibTorch's CPU kernels lack it).
// Error(usage) naming --dtype otherwise.
torch::ScalarType forward_dtype(const SamplerCliOptions& options, const torch::Device& device);

// --dtype's value for a resolved precision: fp32, bf16 or fp16.
std::string dtype_flag_value(torch::ScalarType dtype);
// The resolved sampler flags (after apply_model_sampling_defaults) as a command line, --steps T
// ... --dtype D, for an image record's "arguments": a replay decodes exactly as this run did,
// whatever the model's defaults are then.
std::vector<std::string> sampler_arguments(const SamplerCliOptions& options, torch::ScalarType dtype);
// The decoding settings of an image record: steps, start_step, schedule, choice_temperature,
// temperature, top_k, cfg_scale, cfg_schedule, order, rng, dtype, device.
RecordJson sampler_settings(const DecodeOptions& decode, torch::ScalarType dtype, const torch::Device& device);

}  // namespace maskgit
