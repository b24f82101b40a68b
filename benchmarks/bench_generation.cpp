// Generation benchmark (not a test): decoding-step latency and throughput of a model, the
// transformer forward's achieved GFLOP/s next to a plain matmul's, and MaskGIT's T-step
// parallel decoding against one-token-per-step decoding of the same model.
#include <fmt/format.h>

#include <chrono>
#include <numeric>

#include "cli/common.h"
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

// Forward FLOPs (multiply-add = 2) of one sequence through the transformer.
double forward_flops(const TransformerConfig& c) {
  const double length = static_cast<double>(c.sequence_length()), hidden = static_cast<double>(c.hidden_size);
  const double per_layer = 8 * hidden * hidden + 4 * hidden * static_cast<double>(c.mlp_dim) + 4 * length * hidden;
  const double head = 2 * hidden * hidden + 2 * hidden * static_cast<double>(c.vocabulary_size());
  return length * (static_cast<double>(c.num_layers) * per_layer + head);
}

double matmul_gflops(const torch::Device& device, torch::ScalarType dtype) {
  const int64_t n = device.is_cuda() ? 8192 : 1024;
  const torch::Tensor a = torch::randn({n, n}, torch::TensorOptions().device(device).dtype(dtype));
  const torch::Tensor b = torch::randn({n, n}, torch::TensorOptions().device(device).dtype(dtype));
  a.mm(b);
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

Timing time_decoding(BidirectionalTransformer& transformer, VQTokenizer* tokenizer, int64_t batch,
                     const DecodeOptions& options, const torch::Device& device, int repeats) {
  const TransformerConfig& config = transformer->config();
  std::vector<int64_t> classes(static_cast<size_t>(batch));
  for (int64_t i = 0; i < batch; ++i) classes[static_cast<size_t>(i)] = i % config.num_classes;
  std::vector<uint64_t> seeds(static_cast<size_t>(batch));
  std::iota(seeds.begin(), seeds.end(), uint64_t{0});
  auto run = [&] {
    torch::Tensor ids = generate_tokens(transformer, classes, seeds, options, device);
    if (tokenizer) {
      torch::NoGradGuard no_grad;
      (*tokenizer)->decode(ids.view({batch, config.grid_height, config.grid_width}).to(device));
    }
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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Benchmark generation: ms per decoding step, images/s, achieved GFLOP/s, parallel vs sequential decoding.",
               "bench_generation"};
  std::string model_dir;
  RuntimeOptions runtime;
  bool official = false;
  std::string dtype_name = "fp32";
  int repeats = 3;
  add_model_option(app, model_dir);
  add_runtime_options(app, runtime);
  app.add_flag("--official", official, "Use the official ImageNet 256 transformer with random weights instead of a model");
  app.add_option("--dtype", dtype_name, "Forward precision: fp32 or bf16")->check(CLI::IsMember({"fp32", "bf16"}))->capture_default_str();
  app.add_option("--repeats", repeats, "Timed runs per row")->capture_default_str()->check(CLI::Range(1, 100));
  return run_tool(app, argc, argv, [&] {
    const torch::Device device = apply_runtime_options(runtime);
    const torch::ScalarType dtype = dtype_name == "bf16" ? torch::kBFloat16 : torch::kFloat32;
    std::optional<ModelConfig> config;
    BidirectionalTransformer transformer{nullptr};
    std::optional<VQTokenizer> tokenizer;
    if (official) {
      transformer = BidirectionalTransformer(TransformerConfig::official_imagenet());
    } else {
      config = read_model_config(model_dir);
      transformer = load_transformer(*config, torch::kCPU);
      tokenizer = load_tokenizer(*config, device);
    }
    transformer->to(device, dtype);
    transformer->eval();
    const TransformerConfig& shape = transformer->config();
    fmt::print("device {} | dtype {} | threads {} | model {} | {} tokens per image\n", device.str(), dtype_name,
               torch::get_num_threads(), official ? "official ImageNet 256 (random weights)" : model_dir,
               shape.tokens_per_image());
    fmt::print("plain {}x{} matmul: {:.1f} GFLOP/s\n\n", device.is_cuda() ? 8192 : 1024, device.is_cuda() ? 8192 : 1024,
               matmul_gflops(device, dtype));
    fmt::print("| decoding | batch | steps | ms/step | images/s | GFLOP/s (transformer FLOPs / whole decode time) |\n|---|---|---|---|---|---|\n");
    DecodeOptions parallel;  // the release's defaults: 8 cosine steps
    DecodeOptions sequential;
    sequential.schedule = parse_schedule("custom:" + [&] {
      std::string ones = "1";
      for (int64_t i = 1; i < shape.tokens_per_image(); ++i) ones += ",1";
      return ones;
    }());
    sequential.steps = shape.tokens_per_image();
    VQTokenizer* decoder = tokenizer ? &*tokenizer : nullptr;
    double parallel_rate = 0, sequential_rate = 0;
    for (int64_t batch : {int64_t{1}, int64_t{64}}) {
      const Timing timing = time_decoding(transformer, decoder, batch, parallel, device, repeats);
      fmt::print("| {} steps, cosine | {} | {} | {:.2f} | {:.1f} | {:.1f} |\n", parallel.steps, batch, parallel.steps,
                 timing.ms_per_step, timing.images_per_second, timing.forward_gflops);
      if (batch == 64) parallel_rate = timing.images_per_second;
    }
    const Timing one_by_one = time_decoding(transformer, decoder, 64, sequential, device, 1);
    sequential_rate = one_by_one.images_per_second;
    fmt::print("| one token per step | 64 | {} | {:.2f} | {:.1f} | {:.1f} |\n", sequential.steps, one_by_one.ms_per_step,
               one_by_one.images_per_second, one_by_one.forward_gflops);
    fmt::print("\nparallel ({} steps) vs one token per step ({} steps) at batch 64: {:.1f}x faster\n", parallel.steps,
               sequential.steps, parallel_rate / sequential_rate);
  });
}
