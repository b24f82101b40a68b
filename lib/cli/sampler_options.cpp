#include "cli/sampler_options.h"

#include <fmt/format.h>

#include <cmath>

#include "cli/common.h"
#include "common/error.h"
#include "compat/torch_compat.h"

namespace maskgit {

void add_sampler_options(CLI::App& app, SamplerCliOptions& options) {
  auto* group = app.add_option_group("Sampler");
  group->add_option("--steps", options.steps, "Decoding steps T")->capture_default_str()->check(CLI::Range(1, 1024));
  group->add_option("--start-step", options.start_step, "First step t (ratios start at (t+1)/T)")
      ->capture_default_str()->check(CLI::Range(int64_t{0}, int64_t{1023}));
  group->add_option("--schedule", options.schedule,
                    "Mask schedule: cosine, linear, square, cubic, exp, sqrt, log, arccos, or custom:N1,N2,... "
                    "(tokens revealed per step)")
      ->capture_default_str();
  group->add_option("--choice-temperature", options.choice_temperature,
                    "Gumbel noise on the keep/re-mask choice, annealed to 0 (the release's 4.5)")
      ->capture_default_str()->check(finite_range(0, 1e6));
  group->add_option("--temperature", options.temperature,
                    "Softmax temperature on the logits (1 = off; use --top-k 1 for greedy decoding)")
      ->capture_default_str()->check(finite_range(1e-3, 1e3));
  group->add_option("--top-k", options.top_k, "Sample among the k most likely codes only (0 = off)")
      ->capture_default_str()->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  group->add_option("--cfg-scale", options.cfg_scale,
                    "Classifier-free guidance s: logits = u + s(c - u) (1 = off; needs a model with a no-class token)")
      ->capture_default_str()->check(finite_range(-1e3, 1e3));
  group->add_option("--order", options.order,
                    "Which positions to fix each step: confidence (the release) or halton (a fixed spread-out order)")
      ->capture_default_str()->check(CLI::IsMember({"confidence", "halton"}));
  add_dtype_option(*group, options.dtype);
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
  if (decode.schedule.kind == ScheduleKind::custom && decode.schedule.custom_reveals.size() > 65536)
    throw_usage("--schedule: a custom schedule has at most 65536 steps");
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
