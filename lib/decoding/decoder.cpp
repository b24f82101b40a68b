#include "decoding/decoder.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <stdexcept>

#include "decoding/counter_rng.h"
#include "runtime/threads.h"

namespace maskgit {
namespace {

// Random streams per step: 0 samples the codes, 1 perturbs the keep/re-mask choice.
constexpr int64_t kSampleStream = 0, kChoiceStream = 1, kStreams = 2;

double radical_inverse(int64_t index, int64_t base) {
  double result = 0, fraction = 1.0 / static_cast<double>(base);
  while (index > 0) {
    result += static_cast<double>(index % base) * fraction;
    index /= base;
    fraction /= static_cast<double>(base);
  }
  return result;
}

// Logits → filtered float32 logits for sampling (temperature, top-k).
torch::Tensor shape_logits(torch::Tensor logits, const DecodeOptions& options) {
  logits = logits.to(torch::kFloat32);
  if (options.temperature != 1.0) logits = logits / options.temperature;
  if (options.top_k > 0 && options.top_k < logits.size(-1)) {
    const torch::Tensor kth = std::get<0>(logits.topk(options.top_k, -1)).select(-1, options.top_k - 1).unsqueeze(-1);
    logits = logits.masked_fill(logits < kth, -std::numeric_limits<float>::infinity());
  }
  return logits;
}

}  // namespace

double guidance_scale_at(const DecodeOptions& options, int64_t step, int64_t steps) {
  // (All of s at the last step exactly, whatever the rounding of 1 + (s − 1)·1.)
  if (options.guidance_schedule == GuidanceSchedule::constant || step + 1 >= steps) return options.guidance_scale;
  const double ratio = static_cast<double>(step + 1) / static_cast<double>(steps);
  return 1.0 + (options.guidance_scale - 1.0) * ratio;
}

std::vector<int64_t> halton_order(int64_t height, int64_t width) {
  std::vector<int64_t> order;
  std::vector<bool> seen(static_cast<size_t>(height * width), false);
  // The sequence covers the grid eventually; the bound only guards against a logic error.
  for (int64_t index = 1; static_cast<int64_t>(order.size()) < height * width; ++index) {
    if (index > 1000000 * std::max<int64_t>(1, height * width)) throw std::logic_error("halton_order: no cover");
    const auto row = static_cast<int64_t>(radical_inverse(index, 2) * static_cast<double>(height));
    const auto column = static_cast<int64_t>(radical_inverse(index, 3) * static_cast<double>(width));
    const int64_t cell = row * width + column;
    if (!seen[static_cast<size_t>(cell)]) {
      seen[static_cast<size_t>(cell)] = true;
      order.push_back(cell);
    }
  }
  return order;
}

torch::Tensor masked_count_table(const torch::Tensor& initially_unknown, const DecodeOptions& options) {
  const int64_t steps = decode_step_count(options.schedule, options.steps, options.start_step);
  const torch::Tensor start = initially_unknown.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t batch = start.size(0);
  torch::Tensor table = torch::zeros({steps, batch}, torch::kLong);
  auto counts = table.accessor<int64_t, 2>();
  const auto* initial = start.data_ptr<int64_t>();
  for (int64_t b = 0; b < batch; ++b) {
    int64_t unknown = initial[b];
    for (int64_t step = options.start_step; step + 1 < steps && unknown > 0; ++step) {
      unknown = masked_after_step(options.schedule, step, steps, initial[b], unknown);
      counts[step][b] = unknown;
    }
  }
  return table;
}

torch::Tensor decode_tokens(const DecodeRequest& request, const DecodeOptions& options,
                            const LogitsFunction& logits_of, const StepObserver& observe) {
  if (request.ids.dim() != 2) throw std::invalid_argument("decode_tokens: ids must be [B, N]");
  const torch::Device device = request.ids.device();
  const int64_t batch = request.ids.size(0), tokens = request.ids.size(1);
  if (static_cast<int64_t>(request.seeds.size()) != batch)
    throw std::invalid_argument("decode_tokens: one seed per image is required");
  if (request.class_tokens.dim() != 1 || request.class_tokens.size(0) != batch)
    throw std::invalid_argument("decode_tokens: class_tokens must be [B]");
  if (options.steps < 1 || options.start_step < 0 || options.start_step >= options.steps)
    throw std::invalid_argument("decode_tokens: need 0 <= start_step < steps");
  if (options.guidance_scale != 1.0 && request.no_class_token < 0)
    throw std::invalid_argument("decode_tokens: guidance needs a no-class token");
  // Guidance changes nothing when every image is decoded without a class (u + s·(u − u) = u,
  // exactly): its second forward is skipped then.
  const bool guided = options.guidance_scale != 1.0 &&
                      !request.class_tokens.eq(request.no_class_token).all().item<bool>();
  const int64_t steps = decode_step_count(options.schedule, options.steps, options.start_step);

  torch::Tensor current = request.ids.to(torch::kLong).clone();
  const torch::Tensor classes = request.class_tokens.to(device, torch::kLong);
  const torch::Tensor model_classes = classes;
  // Guidance's unconditional pass: a forward of its own, as large as the conditional one (not
  // one forward of twice the batch), so that an image's tokens are the same whatever the batch
  // size with guidance as without (a matrix product's rounding can depend on its row count).
  const torch::Tensor no_classes = guided ? torch::full_like(classes, request.no_class_token) : torch::Tensor();
  // The only host round trip: how many tokens each image starts with unknown.
  const torch::Tensor initially_unknown = (current == request.mask_id).sum(1).to(torch::kCPU);
  const torch::Tensor count_table = masked_count_table(initially_unknown, options);
  const torch::Tensor masked_after = count_table.to(device);  // [steps, B]
  // Steps after which nothing is left to decode in any image are skipped.
  const int64_t busiest = initially_unknown.numel() ? initially_unknown.max().item<int64_t>() : 0;
  const int64_t last_step = busiest == 0 ? options.start_step : steps;

  torch::Tensor halton_priority;  // [N] float32: later in the Halton order = re-masked first
  if (options.halton_order) {
    if (request.grid_width <= 0 || tokens % request.grid_width != 0)
      throw std::invalid_argument("decode_tokens: Halton order needs the grid width");
    const std::vector<int64_t> order = halton_order(tokens / request.grid_width, request.grid_width);
    std::vector<float> priority(static_cast<size_t>(tokens));
    for (size_t rank = 0; rank < order.size(); ++rank)
      priority[static_cast<size_t>(order[rank])] = -static_cast<float>(rank);
    halton_priority = torch::tensor(priority).to(device).unsqueeze(0);
  }
  const CounterRng rng(request.seeds, steps, kStreams, device);
  const torch::Tensor positions = torch::arange(tokens, torch::TensorOptions().device(device).dtype(torch::kLong));
  const float infinity = std::numeric_limits<float>::infinity();

  // Whether every logit the model returned was finite; checked once, after the loop.
  torch::Tensor all_finite = torch::ones({}, torch::TensorOptions().device(device).dtype(torch::kBool));
  for (int64_t step = options.start_step; step < last_step; ++step) {
    if (device.is_cpu()) adapt_cpu_threads();
    const torch::Tensor unknown = current == request.mask_id;  // [B, N]
    torch::Tensor logits;
    if (guided) {
      const torch::Tensor conditional = logits_of(current, model_classes).to(torch::kFloat32);
      const torch::Tensor unconditional = logits_of(current, no_classes).to(torch::kFloat32);
      all_finite.logical_and_(torch::isfinite(conditional).all().logical_and(torch::isfinite(unconditional).all()));
      logits = unconditional + guidance_scale_at(options, step, steps) * (conditional - unconditional);
    } else {
      logits = logits_of(current, model_classes);
      all_finite.logical_and_(torch::isfinite(logits).all());
    }
    const torch::Tensor probabilities = torch::softmax(shape_logits(logits, options), -1);  // [B, N, K] float32
    const int64_t codes = probabilities.size(2);
    // Categorical sampling by the exponential race: argmax_k p_k / E_k with E_k = −log U_k
    // picks k with probability p_k (the Gumbel-max trick in multiplicative form).
    const torch::Tensor race = rng.uniform(step, kSampleStream, tokens * codes).view({batch, tokens, codes}).log_().neg_();
    const torch::Tensor draws = probabilities.div(race).argmax(-1);  // [B, N]
    const torch::Tensor sampled = torch::where(unknown, draws, current);
    if (step + 1 >= steps) {
      current = sampled;
    } else {
      torch::Tensor score;
      if (options.halton_order) {
        score = halton_priority.expand({batch, tokens});
      } else {
        const double ratio = static_cast<double>(step + 1) / static_cast<double>(steps);
        const double noise_scale = options.choice_temperature * (1.0 - ratio);
        // log p of the sampled code plus Gumbel(0, 1) noise scaled by the annealed temperature.
        const torch::Tensor gumbel = rng.uniform(step, kChoiceStream, tokens).log_().neg_().log_().neg_();
        score = probabilities.gather(2, draws.unsqueeze(2)).squeeze(2).clamp_min(1e-30).log_().add_(gumbel,
                                                                                                    noise_scale);
      }
      // Known tokens are never re-masked; of the rest, the masked_after[step][b] lowest scores are
      // (a NaN score counts as the lowest, so it can never push a known token into the cut).
      score = torch::where(unknown, torch::nan_to_num(score, -infinity, infinity, -infinity), infinity);
      const torch::Tensor order = score.argsort(/*dim=*/int64_t{1});
      const torch::Tensor by_rank = positions.unsqueeze(0) < masked_after[step].unsqueeze(1);  // [B, N]
      const torch::Tensor remask = torch::zeros_like(by_rank).scatter_(1, order, by_rank);
      current = sampled.masked_fill(remask, request.mask_id);
    }
    if (observe) observe(step, current == request.mask_id);
  }
  if (!all_finite.item<bool>())
    throw NonFiniteLogits("the model produced non-finite logits (NaN or infinity): its weights are broken, or the "
                          "forward overflowed in its precision");
  return current;
}

}  // namespace maskgit
