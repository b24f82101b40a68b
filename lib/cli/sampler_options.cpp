#include "cli/sampler_options.h"

#include <fmt/format.h>

#include <cmath>
#include <functional>
#include <vector>

#include "cli/common.h"
#include "cli/image_record.h"
#include "common/console.h"
#include "common/error.h"
#include "compat/torch_compat.h"
#include "generation/sampler.h"

namespace maskgit {

void add_sampler_options(ToolOptions& cli, SamplerCliOptions& options) {
  // The defaults shown are the tool's; the model's (config.json "sampling") come first for
  // --steps, --start-step, --schedule, --choice-temperature, --temperature, --cfg-scale and
  // --cfg-schedule (apply_model_sampling_defaults).
  options.steps_flag = cli.add("steps", options.steps);
  options.start_step_flag = cli.add("start_step", options.start_step);
  options.schedule_flag = cli.add("schedule", options.schedule);
  options.choice_temperature_flag = cli.add("choice_temperature", options.choice_temperature);
  options.temperature_flag = cli.add("temperature", options.temperature);
  options.top_k_flag = cli.add("top_k", options.top_k);
  options.cfg_scale_flag = cli.add("cfg_scale", options.cfg_scale);
  options.cfg_schedule_flag = cli.add("cfg_schedule", options.cfg_schedule);
  options.order_flag = cli.add("order", options.order);
  options.dtype_flag = cli.add("dtype", options.dtype);
  cli.add_flag("release_defaults", options.release_defaults);
  cli.add_flag("show_defaults", options.show_defaults);
}

void apply_model_sampling_defaults(SamplerCliOptions& options, const ModelConfig& config) {
  const bool editing = options.use == SamplingUse::editing;
  // A replay takes nothing from the model: its record gives every sampler flag there was when it
  // was made, and a flag added since did not exist then, so the tool's default is what it ran.
  const SamplingDefaults* model =
      config.sampling && !options.release_defaults && replayed_record() == nullptr ? &*config.sampling : nullptr;
  // One row per flag a model may recommend: the flag, where its value came from, the model's
  // field for this use (none: the model has no say, as for generation's start step) and its
  // value. An optional field the section leaves out (written only when it is not the tool's
  // default: 1, or constant for the guidance schedules) is the tool's default.
  struct Row {
    const CLI::Option* flag;
    std::string* origin;
    const char* field;
    bool optional;
    std::function<void(const SamplingDefaults&)> take;  // sets the option from the model's value
  };
  const std::vector<Row> rows = {
      {options.steps_flag, &options.steps_origin, editing ? "edit_steps" : "steps", false,
       [&](const SamplingDefaults& d) { options.steps = editing ? d.edit_steps : d.steps; }},
      {options.start_step_flag, &options.start_step_origin, editing ? "edit_start_step" : nullptr, false,
       [&](const SamplingDefaults& d) { options.start_step = d.edit_start_step; }},
      {options.schedule_flag, &options.schedule_origin, "schedule", false,
       [&](const SamplingDefaults& d) { options.schedule = d.schedule; }},
      {options.choice_temperature_flag, &options.choice_temperature_origin, "choice_temperature", false,
       [&](const SamplingDefaults& d) { options.choice_temperature = d.choice_temperature; }},
      {options.temperature_flag, &options.temperature_origin, "temperature", true,
       [&](const SamplingDefaults& d) { options.temperature = d.temperature; }},
      {options.cfg_scale_flag, &options.cfg_scale_origin, editing ? "edit_guidance_scale" : "guidance_scale", true,
       [&](const SamplingDefaults& d) { options.cfg_scale = editing ? d.edit_guidance_scale : d.guidance_scale; }},
      {options.cfg_schedule_flag, &options.cfg_schedule_origin,
       editing ? "edit_guidance_schedule" : "guidance_schedule", true, [&](const SamplingDefaults& d) {
         options.cfg_schedule = editing ? d.edit_guidance_schedule : d.guidance_schedule;
       }},
  };
  const Json* section = json_find(config.raw, "sampling");
  for (const Row& row : rows) {
    if (row.flag != nullptr && row.flag->count() > 0) {
      *row.origin = "the flag";
    } else if (model != nullptr && row.field != nullptr) {
      row.take(*model);
      // (A config built in code, with no file's section behind it, is taken as writing every field.)
      const bool written = section == nullptr || json_find(*section, row.field) != nullptr;
      *row.origin = row.optional && !written
                        ? fmt::format("the tool's default (the model's sampling section has no {})", row.field)
                        : fmt::format("the model's sampling.{}", row.field);
    }
  }
}

namespace {

// The number of steps the decoder runs: --steps, or a custom schedule's start step + length.
// (A bad schedule is refused by to_decode_options before anything asks.)
int64_t decoded_step_count(const SamplerCliOptions& options) {
  try {
    return decode_step_count(parse_schedule(options.schedule), options.steps, options.start_step);
  } catch (const std::exception&) {
    return options.steps;
  }
}

}  // namespace

bool show_defaults_requested(int argc, const char* const* argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view argument = argv[i];
    if (argument == "--") break;
    if (argument == "--show-defaults") return true;
  }
  return false;
}

bool show_sampling_defaults(const SamplerCliOptions& options, const ModelConfig& config, bool json) {
  if (!options.show_defaults) return false;
  struct Row {
    const char* flag;
    Json value;
    std::string origin;
  };
  // A custom schedule decides the number of steps itself.
  const int64_t steps = decoded_step_count(options);
  const std::string steps_origin =
      options.schedule.rfind("custom:", 0) == 0 ? "the custom schedule's length" : options.steps_origin;
  auto origin = [](const CLI::Option* flag) { return flag != nullptr && flag->count() > 0 ? "the flag" : "the tool's default"; };
  const std::vector<Row> rows = {
      {"--steps", steps, steps_origin},
      {"--start-step", options.start_step, options.start_step_origin},
      {"--schedule", options.schedule, options.schedule_origin},
      {"--choice-temperature", options.choice_temperature, options.choice_temperature_origin},
      {"--temperature", options.temperature, options.temperature_origin},
      {"--cfg-scale", options.cfg_scale, options.cfg_scale_origin},
      {"--cfg-schedule", options.cfg_schedule, options.cfg_schedule_origin},
      {"--top-k", options.top_k, origin(options.top_k_flag)},
      {"--order", options.order, origin(options.order_flag)},
      {"--dtype", options.dtype, origin(options.dtype_flag)},
  };
  const std::string source = !config.sampling ? "the model has no sampling section: the tool's defaults (the release's)"
                             : options.release_defaults ? "--release-defaults: the model's sampling section is ignored"
                                                        : "the model's sampling section, under the flags given";
  if (json) {
    Json object{{"model", config.directory}, {"source", source}};
    for (const Row& row : rows) object["settings"][std::string(row.flag).substr(2)] = {{"value", row.value}, {"from", row.origin}};
    print_stdout("{}\n", dump_json(object));
  } else {
    print_stdout("decoding settings for {} ({}):\n", config.directory, source);
    for (const Row& row : rows) {
      const std::string value = row.value.is_string() ? row.value.get<std::string>()
                                : row.value.is_number_float() ? exact_number(row.value.get<double>())
                                                              : dump_json(row.value);
      print_stdout("  {:<22} {:<10} {}\n", row.flag, value, row.origin);
    }
  }
  return true;
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

void add_dtype_option(ToolOptions& cli, std::string& dtype) { cli.add("dtype", dtype); }

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
  // A custom schedule decides the step count itself; a --steps given beside it must agree. (A
  // replayed record written before this rule carries the default --steps beside it: let through.)
  if (!decode.schedule.custom_reveals.empty() && options.steps_flag != nullptr && options.steps_flag->count() > 0 &&
      options.steps != decode.steps && replayed_record() == nullptr)
    throw_usage(fmt::format("--steps: {} disagrees with the custom schedule's {} steps (--start-step {} + its {} "
                            "reveals); leave --steps out",
                            options.steps, decode.steps, options.start_step, decode.schedule.custom_reveals.size()));
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
  try {
    decode.guidance_schedule = parse_guidance_schedule(options.cfg_schedule);
  } catch (const std::exception& e) {
    throw_usage(fmt::format("--cfg-schedule: {}", e.what()));
  }
  decode.halton_order = options.order == "halton";
  return decode;
}

std::string dtype_flag_value(torch::ScalarType dtype) {
  if (dtype == torch::kBFloat16) return "bf16";
  if (dtype == torch::kFloat16) return "fp16";
  return "fp32";
}

std::vector<std::string> sampler_arguments(const SamplerCliOptions& options, torch::ScalarType dtype) {
  // The step count the decoder ran (a custom schedule's own, not a --steps beside it).
  return {"--steps",       std::to_string(decoded_step_count(options)),
          "--start-step",  std::to_string(options.start_step),
          "--schedule",    options.schedule,
          "--choice-temperature", exact_number(options.choice_temperature),
          "--temperature", exact_number(options.temperature),
          "--top-k",       std::to_string(options.top_k),
          "--cfg-scale",   exact_number(options.cfg_scale),
          "--cfg-schedule", options.cfg_schedule,
          "--order",       options.order,
          "--dtype",       dtype_flag_value(dtype)};
}

RecordJson sampler_settings(const DecodeOptions& decode, torch::ScalarType dtype, const torch::Device& device) {
  RecordJson settings = decode_settings_json(decode, dtype);
  settings["device"] = device.str();
  return settings;
}

}  // namespace maskgit
