#include "decoding/decoder.h"
#include "runtime/threads.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <stdexcept>

namespace maskgit {
namespace {

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

torch::Tensor decode_tokens(const DecodeRequest& request, const DecodeOptions& options,
                            const LogitsFunction& logits_of, const StepObserver& observe) {
  const torch::Tensor initial = request.ids.to(torch::kLong);
  if (initial.dim() != 2) throw std::invalid_argument("decode_tokens: ids must be [B, N]");
  const int64_t batch = initial.size(0), tokens = initial.size(1);
  if (static_cast<int64_t>(request.generators.size()) != batch)
    throw std::invalid_argument("decode_tokens: one generator per image is required");
  if (options.steps < 1 || options.start_step < 0 || options.start_step >= options.steps)
    throw std::invalid_argument("decode_tokens: need 0 <= start_step < steps");
  const bool guided = options.guidance_scale != 1.0;
  if (guided && request.no_class_token < 0) throw std::invalid_argument("decode_tokens: guidance needs a no-class token");
  const int64_t steps = options.schedule.kind == ScheduleKind::custom
                            ? options.start_step + static_cast<int64_t>(options.schedule.custom_reveals.size())
                            : options.steps;

  // Sampling state lives on the CPU in float32: the per-image generators are CPU generators
  // and the work per step is small next to the forward pass.
  torch::Tensor current = initial.to(torch::kCPU).clone();
  const torch::Tensor initially_unknown = (current == request.mask_id).sum(1);
  std::vector<int64_t> halton;
  if (options.halton_order) {
    if (request.grid_width <= 0 || tokens % request.grid_width != 0)
      throw std::invalid_argument("decode_tokens: Halton order needs the grid width");
    halton = halton_order(tokens / request.grid_width, request.grid_width);
  }
  const torch::Device device = request.ids.device();
  torch::Tensor sampled = current.clone();
  for (int64_t step = options.start_step; step < steps; ++step) {
    adapt_cpu_threads();
    torch::Tensor unknown = current == request.mask_id;
    if (!unknown.any().item<bool>()) break;
    torch::Tensor logits;
    {
      torch::NoGradGuard no_grad;
      torch::Tensor ids = current.to(device);
      torch::Tensor classes = request.class_tokens.to(device);
      if (guided) {
        torch::Tensor both = logits_of(torch::cat({ids, ids}),
                                       torch::cat({classes, torch::full_like(classes, request.no_class_token)}));
        both = both.to(torch::kCPU, torch::kFloat32);
        const torch::Tensor conditional = both.slice(0, 0, batch), unconditional = both.slice(0, batch);
        logits = unconditional + options.guidance_scale * (conditional - unconditional);
      } else {
        logits = logits_of(ids, classes).to(torch::kCPU, torch::kFloat32);
      }
    }
    const torch::Tensor probabilities = torch::softmax(shape_logits(logits, options), -1);  // [B, N, K]
    const double ratio = static_cast<double>(step + 1) / static_cast<double>(steps);
    const double noise_scale = options.choice_temperature * (1.0 - ratio);
    for (int64_t b = 0; b < batch; ++b) {
      at::Generator generator = request.generators[static_cast<size_t>(b)];
      const torch::Tensor draws = torch::multinomial(probabilities[b], 1, /*replacement=*/true, generator).squeeze(1);
      const torch::Tensor row_unknown = unknown[b];
      torch::Tensor row = torch::where(row_unknown, draws, current[b]);
      sampled[b] = row;
      const int64_t unknown_count = row_unknown.sum().item<int64_t>();
      if (unknown_count == 0) continue;
      const int64_t to_mask = masked_after_step(options.schedule, step, steps,
                                                initially_unknown[b].item<int64_t>(), unknown_count);
      torch::Tensor next = row.clone();
      if (step + 1 < steps) {
        torch::Tensor remask;
        if (options.halton_order) {
          // Keep masked the last `to_mask` unknown positions in Halton order.
          std::vector<int64_t> pending;
          auto unknown_flags = row_unknown.accessor<bool, 1>();
          for (int64_t cell : halton)
            if (unknown_flags[cell]) pending.push_back(cell);
          remask = torch::tensor(std::vector<int64_t>(pending.end() - to_mask, pending.end()), torch::kLong);
        } else {
          torch::Tensor confidence = torch::log(probabilities[b].gather(1, draws.unsqueeze(1)).squeeze(1).clamp_min(1e-30));
          // Gumbel(0,1) noise on the selection score only.
          const torch::Tensor uniform = torch::rand({tokens}, generator).clamp(1e-20, 1.0 - 1e-7);
          confidence = confidence + noise_scale * -torch::log(-torch::log(uniform));
          confidence = confidence.masked_fill(row_unknown.logical_not(), std::numeric_limits<float>::infinity());
          remask = std::get<1>(confidence.topk(to_mask, 0, /*largest=*/false));
        }
        next.index_fill_(0, remask, request.mask_id);
      }
      current[b] = next;
    }
    if (observe) observe(step, current == request.mask_id);
  }
  return sampled.to(request.ids.device());
}

}  // namespace maskgit
