#include "cli/sampler_options.h"

#include <fmt/format.h>

#include "common/error.h"

namespace maskgit {

void add_sampler_options(CLI::App& app, SamplerCliOptions& options) {
  auto* group = app.add_option_group("Sampler");
  group->add_option("--steps", options.steps, "Decoding steps T")->capture_default_str()->check(CLI::Range(1, 1024));
  group->add_option("--start-step", options.start_step, "First step t (ratios start at (t+1)/T)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  group->add_option("--schedule", options.schedule,
                    "Mask schedule: cosine, linear, square, cubic, exp, sqrt, log, arccos, or custom:N1,N2,... "
                    "(tokens revealed per step)")
      ->capture_default_str();
  group->add_option("--choice-temperature", options.choice_temperature,
                    "Gumbel noise on the keep/re-mask choice, annealed to 0 (the release's 4.5)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  group->add_option("--temperature", options.temperature, "Softmax temperature on the logits (1 = off)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  group->add_option("--top-k", options.top_k, "Sample among the k most likely codes only (0 = off)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  group->add_option("--cfg-scale", options.cfg_scale,
                    "Classifier-free guidance s: logits = u + s(c - u) (1 = off; needs a model with a no-class token)")
      ->capture_default_str();
  group->add_option("--order", options.order,
                    "Which positions to fix each step: confidence (the release) or halton (a fixed spread-out order)")
      ->capture_default_str()->check(CLI::IsMember({"confidence", "halton"}));
}

DecodeOptions to_decode_options(const SamplerCliOptions& options) {
  DecodeOptions decode;
  try {
    decode.schedule = parse_schedule(options.schedule);
  } catch (const std::exception& e) {
    throw_usage(fmt::format("--schedule: {}", e.what()));
  }
  decode.steps = decode.schedule.kind == ScheduleKind::custom
                     ? options.start_step + static_cast<int64_t>(decode.schedule.custom_reveals.size())
                     : options.steps;
  if (options.start_step >= decode.steps)
    throw_usage(fmt::format("--start-step: {} must be below --steps {}", options.start_step, decode.steps));
  decode.start_step = options.start_step;
  decode.choice_temperature = options.choice_temperature;
  decode.temperature = options.temperature;
  decode.top_k = options.top_k;
  decode.guidance_scale = options.cfg_scale;
  decode.halton_order = options.order == "halton";
  return decode;
}

}  // namespace maskgit
