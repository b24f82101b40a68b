// Generation benchmark (not a test): token decoding (transformer forwards plus the sampling
// loop) in images/s and ms per step, the forward's achieved FLOP/s against a plain matmul's in
// the same run, MaskGIT's T-step parallel decoding against one token per step, and what bf16
// does to the tokenizer decoder's pixels. scripts/benchmark.sh runs it beside the PyTorch
// reference in benchmarks/reference/ and prints one table.
#include <fmt/format.h>

#include <chrono>
#include <numeric>

#include "cli/common.h"
#include "cli/sampler_options.h"
#include "common/error.h"
#include "generation/sampler.h"
#include "model/model_dir.h"
#include "tokenizer/pipeline.h"

namespace {

using namespace maskgit;
using Clock = std::chrono::steady_clock;

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// FLOPs (multiply-add = 2) of one decoding forward: every layer over the whole sequence, the
// MLM head over the image positions and the image codes only (image_logits).
double forward_flops(const TransformerConfig& c) {
  const double length = static_cast<double>(c.sequence_length()), hidden = static_cast<double>(c.hidden_size);
  const double per_layer = 8 * hidden * hidden + 4 * hidden * static_cast<double>(c.mlp_dim) + 4 * length * hidden;
  const double head = 2 * hidden * hidden + 2 * hidden * static_cast<double>(c.codebook_size);
  return length * static_cast<double>(c.num_layers) * per_layer + static_cast<double>(c.tokens_per_image()) * head;
}

// The matrix ceiling: GFLOP/s of a large square matmul in `dtype` on `device`.
double matmul_gflops(const torch::Device& device, torch::ScalarType dtype) {
  const int64_t n = device.is_cuda() ? 8192 : 1024;
  c10::InferenceMode inference;
  const torch::Tensor a = torch::randn({n, n}, torch::TensorOptions().device(device)).to(dtype);
  const torch::Tensor b = torch::randn({n, n}, torch::TensorOptions().device(device)).to(dtype);
  for (int i = 0; i < 3; ++i) a.mm(b);
  synchronize(device);
  const int repeats = 10;
  const auto start = Clock::now();
  for (int i = 0; i < repeats; ++i) a.mm(b);
  synchronize(device);
  return repeats * 2.0 * static_cast<double>(n * n * n) / seconds_since(start) / 1e9;
}

struct Timing {
  double ms_per_step = 0, images_per_second = 0, forward_gflops = 0;
};

Timing time_decoding(BidirectionalTransformer& transformer, int64_t batch, const DecodeOptions& options,
                     const torch::Device& device, int repeats) {
  const TransformerConfig& config = transformer->config();
  std::vector<int64_t> classes(static_cast<size_t>(batch));
  for (int64_t i = 0; i < batch; ++i) classes[static_cast<size_t>(i)] = i % config.num_classes;
  std::vector<uint64_t> seeds(static_cast<size_t>(batch));
  std::iota(seeds.begin(), seeds.end(), uint64_t{0});
  auto run = [&] {
    generate_tokens(transformer, classes, seeds, options, device);
    synchronize(device);
  };
  run();  // warm-up
  const auto start = Clock::now();
  for (int i = 0; i < repeats; ++i) run();
  const double seconds = seconds_since(start) / repeats;
  const int64_t steps = options.steps - options.start_step;
  Timing timing;
  timing.ms_per_step = 1000.0 * seconds / static_cast<double>(steps);
  timing.images_per_second = static_cast<double>(batch) / seconds;
  timing.forward_gflops = forward_flops(config) * static_cast<double>(batch * steps) / seconds / 1e9;
  return timing;
}

// Pixels of 64 generated images decoded by the tokenizer in fp32 and in bf16: the PSNR of the
// bf16 pixels against the fp32 ones and the largest difference in 8-bit levels.
void tokenizer_precision(const ModelConfig& config, BidirectionalTransformer& transformer, const torch::Device& device,
                         bool json_output) {
  VQTokenizer tokenizer = load_tokenizer(config, device);
  std::vector<int64_t> classes(64);
  for (size_t i = 0; i < classes.size(); ++i) classes[i] = static_cast<int64_t>(i) % config.num_classes();
  std::vector<uint64_t> seeds(64);
  std::iota(seeds.begin(), seeds.end(), uint64_t{0});
  c10::InferenceMode inference;
  const torch::Tensor ids = generate_tokens(transformer, classes, seeds, DecodeOptions{}, device);
  const torch::Tensor fp32 = tokens_to_images(tokenizer, transformer->config(), ids, config.image_height,
                                              config.image_width, device);
  tokenizer->to(torch::kBFloat16);
  const torch::Tensor bf16 = tokens_to_images(tokenizer, transformer->config(), ids, config.image_height,
                                              config.image_width, device).to(torch::kFloat32);
  const double mse = (fp32 - bf16).square().mean().item<double>();
  const double levels = (fp32.mul(255).round() - bf16.mul(255).round()).abs().max().item<double>();
  const double psnr = 10 * std::log10(1.0 / std::max(mse, 1e-20));
  if (json_output) {
    Json row = Json::object();
    row["study"] = "tokenizer_bf16_vs_fp32";
    row["images"] = int64_t{64};
    row["psnr_db"] = psnr;
    row["largest_difference_levels"] = levels;
    fmt::print("{}\n", dump_json(row));
  } else {
    fmt::print("tokenizer decoder in bf16 against fp32 (64 generated images): PSNR {:.1f} dB, largest difference {} "
               "of 255 levels\n",
               psnr, levels);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Benchmark token decoding: images/s, ms per step, fraction of the matmul ceiling; parallel vs "
               "one-token-per-step decoding; bf16 in the tokenizer decoder.",
               "bench_generation"};
  std::string model_dir, config_name = "model";
  RuntimeOptions runtime;
  SamplerCliOptions precision;
  std::vector<int64_t> batches = {1, 64};
  int64_t steps = 0;
  int repeats = 3;
  bool json_output = false, sequential = false, tokenizer_study = false;
  ToolOptions cli(app, Tool::benchmark);
  add_model_option(cli, model_dir);
  add_runtime_options(cli, runtime);
  app.add_option("--config", config_name,
                 "model (the -m model), official256 or official512 (the release's ImageNet transformer, random weights)")
      ->check(CLI::IsMember({"model", "official256", "official512"}))->capture_default_str();
  add_dtype_option(cli, precision.dtype);
  app.add_option("--batch", batches, "Batch sizes, comma-separated")->delimiter(',')->check(CLI::Range(1, 4096));
  app.add_option("--steps", steps, "Decoding steps (0: 8, or 12 for official512)")->check(CLI::Range(0, 1024));
  app.add_option("--repeats", repeats, "Timed runs per row (after one warm-up)")->capture_default_str()->check(CLI::Range(1, 100));
  app.add_flag("--sequential", sequential, "Also decode one token per step at the largest batch (the paper's comparison)");
  app.add_flag("--tokenizer-precision", tokenizer_study, "Also compare the tokenizer decoder's pixels in bf16 and fp32");
  app.add_flag("--json", json_output, "One JSON line per row instead of a table");
  return run_tool(cli, argc, argv, [&] {
    const torch::Device device = apply_runtime_options(runtime);
    const torch::ScalarType dtype = forward_dtype(precision, device);
    std::optional<ModelConfig> config;
    BidirectionalTransformer transformer{nullptr};
    if (config_name == "model") {
      config = read_model_config(model_dir);
      transformer = load_transformer(*config, device, dtype);
    } else {
      transformer = BidirectionalTransformer(TransformerConfig::official_imagenet(config_name == "official512" ? 32 : 16));
      transformer->to(device, dtype);
      transformer->eval();
    }
    const TransformerConfig& shape = transformer->config();
    DecodeOptions parallel;  // the release's defaults: cosine, choice temperature 4.5
    parallel.steps = steps > 0 ? steps : (config_name == "official512" ? 12 : 8);
    const double ceiling = matmul_gflops(device, dtype);
    const std::string name = config_name == "model" ? model_dir : config_name;
    const std::vector<torch::Tensor> parameters = transformer->parameters();
    const int64_t parameter_count = std::accumulate(parameters.begin(), parameters.end(), int64_t{0},
                                                    [](int64_t n, const torch::Tensor& p) { return n + p.numel(); });
    if (!json_output) {
      fmt::print("device {} | dtype {} | threads {} | {} | {} tokens per image, {:.1f}M parameters\n", device.str(),
                 dtype_name(dtype), torch::get_num_threads(), name, shape.tokens_per_image(),
                 static_cast<double>(parameter_count) / 1e6);
      fmt::print("matrix ceiling ({} matmul): {:.1f} GFLOP/s\n\n", device.is_cuda() ? "8192²" : "1024²", ceiling);
      fmt::print("| decoding | batch | steps | ms/step | images/s | GFLOP/s | of ceiling |\n|---|---|---|---|---|---|---|\n");
    }
    auto report = [&](const std::string& decoding, int64_t batch, int64_t row_steps, const Timing& timing) {
      if (json_output) {
        Json row = Json::object();
        row["implementation"] = "maskgit-cpp";
        row["config"] = name;
        row["decoding"] = decoding;
        row["device"] = device.str();
        row["dtype"] = dtype_name(dtype);
        row["threads"] = static_cast<int64_t>(torch::get_num_threads());
        row["batch"] = batch;
        row["steps"] = row_steps;
        row["ms_per_step"] = timing.ms_per_step;
        row["images_per_second"] = timing.images_per_second;
        row["gflops"] = timing.forward_gflops;
        row["ceiling_gflops"] = ceiling;
        fmt::print("{}\n", dump_json(row));
      } else {
        fmt::print("| {} | {} | {} | {:.2f} | {:.1f} | {:.1f} | {:.1f}% |\n", decoding, batch, row_steps,
                   timing.ms_per_step, timing.images_per_second, timing.forward_gflops,
                   100 * timing.forward_gflops / ceiling);
      }
      std::fflush(stdout);
    };
    double parallel_rate = 0;
    for (int64_t batch : batches) {
      const Timing timing = time_decoding(transformer, batch, parallel, device, repeats);
      report(fmt::format("{} steps, cosine", parallel.steps), batch, parallel.steps, timing);
      parallel_rate = timing.images_per_second;
    }
    if (sequential) {
      DecodeOptions one_by_one;
      std::vector<std::string> ones(static_cast<size_t>(shape.tokens_per_image()), "1");
      one_by_one.schedule = parse_schedule("custom:" + fmt::format("{}", fmt::join(ones, ",")));
      one_by_one.steps = shape.tokens_per_image();
      const int64_t batch = batches.back();
      const Timing timing = time_decoding(transformer, batch, one_by_one, device, 1);
      report("one token per step", batch, one_by_one.steps, timing);
      if (!json_output)
        fmt::print("\nparallel ({} steps) vs one token per step ({} steps) at batch {}: {:.1f}x faster\n",
                   parallel.steps, one_by_one.steps, batch, parallel_rate / timing.images_per_second);
    }
    if (tokenizer_study) {
      if (!config) throw_usage("--tokenizer-precision needs a model directory (--config model)");
      tokenizer_precision(*config, transformer, device, json_output);
    }
  });
}
