#include "generation/sampler.h"

#include <fmt/format.h>

#include "common/error.h"
#include "compat/torch_compat.h"
#include "decoding/counter_rng.h"
#include "runtime/threads.h"
#include "tokenizer/pipeline.h"

namespace maskgit {

int64_t class_token_for(const TransformerConfig& config, int64_t class_id) {
  if (class_id < 0) {
    if (!config.no_class_token)
      throw InvalidArgument("class",
                            "this model was trained without a \"no class\" token: give a class (or a guidance scale of 1)");
    return config.no_class_token_id();
  }
  if (class_id >= config.num_classes)
    throw InvalidArgument("class", fmt::format("{} is out of range (0..{})", class_id, config.num_classes - 1));
  return config.class_token(class_id);
}

torch::Tensor complete_tokens(BidirectionalTransformer& transformer, const torch::Tensor& ids,
                              const std::vector<int64_t>& classes, const std::vector<uint64_t>& seeds,
                              const DecodeOptions& options, const torch::Device& device) {
  const TransformerConfig& config = transformer->config();
  if (options.guidance_scale != 1.0 && !config.no_class_token)
    throw InvalidArgument("cfg_scale", "this model was trained without a \"no class\" token, so guidance is unavailable");
  std::vector<int64_t> class_tokens;
  for (int64_t class_id : classes) class_tokens.push_back(class_token_for(config, class_id));
  transformer->eval();
  torch::Tensor decoded;
  {
    c10::InferenceMode inference;
    DecodeRequest request;
    request.ids = ids.to(device, torch::kLong);
    request.class_tokens = torch::tensor(class_tokens, torch::kLong).to(device);
    request.mask_id = config.mask_token();
    request.no_class_token = config.no_class_token_id();
    request.grid_width = config.grid_width;
    request.seeds = seeds;
    const LogitsFunction logits_of = [&](const torch::Tensor& batch_ids, const torch::Tensor& batch_classes) {
      if (!batch_ids.is_cpu()) return transformer->image_logits(batch_ids, batch_classes);
      // On the CPU each intra-op thread runs the forward of its own slice of the batch.
      std::vector<torch::Tensor> parts(static_cast<size_t>(std::max<int64_t>(1, batch_ids.size(0))));
      const int64_t slices = run_slices_in_parallel(batch_ids.size(0), [&](int64_t slice, int64_t begin, int64_t end) {
        parts[static_cast<size_t>(slice)] =
            transformer->image_logits(batch_ids.slice(0, begin, end), batch_classes.slice(0, begin, end));
      });
      parts.resize(static_cast<size_t>(slices));
      return slices == 1 ? parts[0] : torch::cat(parts);
    };
    try {
      decoded = decode_tokens(request, options, logits_of).to(torch::kCPU);
    } catch (const NonFiniteLogits& e) {
      throw_bad_input(fmt::format("the transformer: {}", e.what()));
    }
  }
  // A normal tensor again: callers may update it in place outside inference mode.
  return decoded.clone();
}

torch::Tensor generate_tokens(BidirectionalTransformer& transformer, const std::vector<int64_t>& classes,
                              const std::vector<uint64_t>& seeds, const DecodeOptions& options,
                              const torch::Device& device) {
  const TransformerConfig& config = transformer->config();
  const torch::Tensor all_masked = torch::full({static_cast<int64_t>(classes.size()), config.tokens_per_image()},
                                               config.mask_token(), torch::kLong);
  return complete_tokens(transformer, all_masked, classes, seeds, options, device);
}

torch::Tensor tokens_to_images(VQTokenizer& tokenizer, const TransformerConfig& shape, const torch::Tensor& ids,
                               int64_t height, int64_t width, const torch::Device& device) {
  const torch::Tensor grids = ids.view({-1, shape.grid_height, shape.grid_width}).to(device);
  return decode_each(tokenizer, grids, height, width);
}

void generate_images(BidirectionalTransformer& transformer, VQTokenizer& tokenizer, int64_t height, int64_t width,
                     const std::vector<int64_t>& classes, const std::vector<uint64_t>& seeds,
                     const DecodeOptions& options, int64_t batch_size, const torch::Device& device,
                     const GeneratedBatchCallback& on_batch) {
  const auto total = static_cast<int64_t>(classes.size());
  for (int64_t begin = 0; begin < total; begin += batch_size) {
    const int64_t end = std::min(total, begin + batch_size);
    const std::vector<int64_t> batch_classes(classes.begin() + begin, classes.begin() + end);
    const std::vector<uint64_t> batch_seeds(seeds.begin() + begin, seeds.begin() + end);
    const torch::Tensor ids = generate_tokens(transformer, batch_classes, batch_seeds, options, device);
    on_batch(begin, ids, tokens_to_images(tokenizer, transformer->config(), ids, height, width, device));
  }
}

std::string dtype_name(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat32: return "fp32";
    case torch::kBFloat16: return "bf16";
    case torch::kFloat16: return "fp16";
    default: return c10::toString(dtype);
  }
}

Json decode_settings_json(const DecodeOptions& options, torch::ScalarType forward_dtype) {
  Json json = Json::object();
  json["steps"] = options.steps;
  json["start_step"] = options.start_step;
  json["schedule"] = options.schedule.name();
  json["choice_temperature"] = options.choice_temperature;
  json["temperature"] = options.temperature;
  json["top_k"] = options.top_k;
  json["cfg_scale"] = options.guidance_scale;
  json["cfg_schedule"] = guidance_schedule_name(options.guidance_schedule);
  json["order"] = options.halton_order ? "halton" : "confidence";
  json["rng"] = kCounterRngName;
  json["dtype"] = dtype_name(forward_dtype);
  return json;
}

}  // namespace maskgit
