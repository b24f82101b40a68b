#include "cli/sampler_options.h"

#include <fmt/format.h>

#include <cmath>

#include "cli/common.h"
#include "common/error.h"
#include "compat/torch_compat.h"

namespace maskgit {

void add_sampler_options(CLI::App& app, SamplerCliOptions& options) {
  const bool editing = options.use == SamplingUse::editing;
  auto* group = app.add_option_group("Sampler");
  // The defaults of --steps, --start-step, --schedule and --choice-temperature are the model's
  // when its config.json has a "sampling" section, so --help cannot print one value for them.
  options.steps_flag =
      group->add_option("--steps", options.steps,
                        fmt::format("Decoding steps T (default: the model's sampling.{} in config.json, else {})",
                                    editing ? "edit_steps" : "steps", options.steps))
          ->check(CLI::Range(int64_t{1}, SamplingDefaults::kMaxSteps));
  options.start_step_flag =
      group->add_option("--start-step", options.start_step,
                        editing ? fmt::format("First step t, ratios start at (t+1)/T (default: the model's "
                                              "sampling.edit_start_step, else {})",
                                              options.start_step)
                                : fmt::format("First step t, ratios start at (t+1)/T (default: {})", options.start_step))
          ->check(CLI::Range(int64_t{0}, SamplingDefaults::kMaxSteps - 1));
  options.schedule_flag =
      group->add_option("--schedule", options.schedule,
                        fmt::format("Mask schedule: cosine, linear, square, cubic, exp, sqrt, log, arccos, or "
                                    "custom:N1,N2,... (tokens revealed per step) (default: the model's "
                                    "sampling.schedule, else {})",
                                    options.schedule))
          ->check(CLI::Validator(
              [](std::string& text) -> std::string {
                try {
                  const MaskSchedule schedule = parse_schedule(text);
                  if (schedule.custom_reveals.size() > SamplingDefaults::kMaxCustomSteps)
                    return fmt::format("a custom schedule has at most {} steps", SamplingDefaults::kMaxCustomSteps);
                } catch (const std::exception& e) {
                  return e.what();
                }
                return std::string();
              },
              ""));
  options.choice_temperature_flag =
      group->add_option("--choice-temperature", options.choice_temperature,
                        fmt::format("Gumbel noise on the keep/re-mask choice, annealed to 0 (default: the model's "
                                    "sampling.choice_temperature, else {:g}, the release's)",
                                    options.choice_temperature))
          ->check(finite_range(0, SamplingDefaults::kMaxChoiceTemperature));
  group->add_option("--temperature", options.temperature,
                    "Softmax temperature on the logits (1 = off; use --top-k 1 for greedy decoding)")
      ->capture_default_str()->check(finite_range(1e-3, 1e3));
  group->add_option("--top-k", options.top_k, "Sample among the k most likely codes only (0 = off)")
      ->capture_default_str()->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  group->add_option("--cfg-scale", options.cfg_scale,
                    "Classifier-free guidance s: logits = u + s(c - u) (1 = off; needs a model with a \"no class\" "
                    "token, which the release's models lack)")
      ->capture_default_str()->check(finite_range(-1e3, 1e3));
  group->add_option("--order", options.order,
                    "Which positions to fix each step: confidence (the release) or halton (a fixed spread-out order)")
      ->capture_default_str()->check(CLI::IsMember({"confidence", "halton"}));
  add_dtype_option(*group, options.dtype);
}

void apply_model_sampling_defaults(SamplerCliOptions& options, const ModelConfig& config) {
  if (!config.sampling) return;
  const SamplingDefaults& defaults = *config.sampling;
  const bool editing = options.use == SamplingUse::editing;
  auto given = [](const CLI::Option* flag) { return flag != nullptr && flag->count() > 0; };
  if (!given(options.steps_flag)) {
    options.steps = editing ? defaults.edit_steps : defaults.steps;
    options.steps_origin = editing ? "the model's sampling.edit_steps" : "the model's sampling.steps";
  }
  if (editing && !given(options.start_step_flag)) {
    options.start_step = defaults.edit_start_step;
    options.start_step_origin = "the model's sampling.edit_start_step";
  }
  if (!given(options.schedule_flag)) options.schedule = defaults.schedule;
  if (!given(options.choice_temperature_flag)) options.choice_temperature = defaults.choice_temperature;
}

void check_sampler_for_model(const SamplerCliOptions& options, const TransformerConfig& transformer) {
  if (options.cfg_scale != 1.0 && !transformer.no_class_token)
    throw_usage(fmt::format("--cfg-scale: {:g} needs the unconditional pass of a \"no class\" token, which this model "
                            "lacks (as the release's models do); leave --cfg-scale at 1",
                            options.cfg_scale));
}

DecodeOptions decode_options_for_model(SamplerCliOptions& options, const ModelConfig& config) {
  apply_model_sampling_defaults(options, config);
  if (config.transformer) check_sampler_for_model(options, *config.transformer);
  return to_decode_options(options);
}

void add_dtype_option(CLI::App& app, std::string& dtype) {
  app.add_option("--dtype", dtype,
                 "Precision of the transformer's forward pass: auto (bf16 on CUDA GPUs with native bf16, else fp32), "
                 "fp32, bf16, fp16 (CUDA only); sampling is always fp32")
      ->capture_default_str()->check(CLI::IsMember({"auto", "fp32", "bf16", "fp16"}));
}

torch::ScalarType forward_dtype(const SamplerCliOptions& options, const torch::Device& device) {
  if (options.dtype == "auto") return compat::has_fast_bf16(device) ? torch::kBFloat16 : torch::kFloat32;
  if (options.dtype == "fp32") return torch::kFloat32;
  if (options.dtype == "bf16") return torch::kBFloat16;
  if (options.dtype == "fp16") {
    if (!device.is_cuda()) throw_usage("--dtype fp16: half precision needs a CUDA device (on the CPU: fp32 or bf16)");
    return torch::kFloat16;
  }
  throw_usage(fmt::format("--dtype: \"{}\" is not auto, fp32, bf16 or fp16", options.dtype));
}

DecodeOptions to_decode_options(const SamplerCliOptions& options) {
  DecodeOptions decode;
  try {
    decode.schedule = parse_schedule(options.schedule);
  } catch (const std::exception& e) {
    throw_usage(fmt::format("--schedule: {}", e.what()));
  }
  decode.steps = decode_step_count(decode.schedule, options.steps, options.start_step);
  if (decode.schedule.custom_reveals.size() > SamplingDefaults::kMaxCustomSteps)
    throw_usage(fmt::format("--schedule: a custom schedule has at most {} steps", SamplingDefaults::kMaxCustomSteps));
  if (options.start_step >= decode.steps) {
    auto given = [](const CLI::Option* flag) { return flag == nullptr || flag->count() > 0; };
    if (given(options.start_step_flag) && !given(options.steps_flag))
      throw_usage(fmt::format("--start-step: {} must be below the {} steps of {} (pass --steps too)",
                              options.start_step, decode.steps, options.steps_origin));
    if (!given(options.start_step_flag) && given(options.steps_flag))
      throw_usage(fmt::format("--steps: {} must be above the first step {} ({}; pass --start-step too)", decode.steps,
                              options.start_step, options.start_step_origin));
    throw_usage(fmt::format("--start-step: {} must be below --steps {}", options.start_step, decode.steps));
  }
  decode.start_step = options.start_step;
  decode.choice_temperature = options.choice_temperature;
  decode.temperature = options.temperature;
  decode.top_k = options.top_k;
  decode.guidance_scale = options.cfg_scale;
  decode.halton_order = options.order == "halton";
  return decode;
}

}  // namespace maskgit
