// Release parity: a model directory converted from the release's Flax checkpoints (by
// maskgit-convert) against golden tensors computed by an independent numpy reference of the
// release's networks (tests/reference/maskgit_reference.py) on the same random weights.
//
//   release_parity MODEL_DIR GOLDEN.safetensors
//
// Checks, one line each with the measured difference:
//   config      the inferred hyperparameters, image size and class count equal the golden's
//               metadata (what the reference drew the weights for);
//   encode      the encoder's latents within kTolerance, and VQTokenizer::encode's ids exactly;
//   decode      VQTokenizer::decode: pixels within kTolerance (max |a-b| / max |b|);
//   logits      BidirectionalTransformer::forward on the release's ids (-1 → mask_token(), the
//               row the release's -1 wraps to), and image_logits (the decoder's logits path);
//   rng         the counter generator's numbers, bit for bit;
//   schedule    the masked-count table against the reference's cosine test vectors;
//   gen, edit   decode_tokens with the converted transformer: the masks left after every step
//               and the final ids exactly equal the release's parallel decode run by the
//               reference with the same random numbers.
// Exit status: 0 when every check passes, 1 when any fails, 2 when the inputs cannot be read.
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "decoding/counter_rng.h"
#include "decoding/decoder.h"
#include "decoding/schedule.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "io/tensor_io.h"
#include "model/model_dir.h"

namespace {

using namespace maskgit;

// Float outputs: max |ours − reference| / max |reference| per tensor.
constexpr double kTolerance = 1e-4;

class Checks {
 public:
  void report(bool ok, const std::string& name, const std::string& detail) {
    fmt::print("{} {:<28} {}\n", ok ? "ok  " : "FAIL", name, detail);
    std::fflush(stdout);
    if (!ok) ++failures_;
    ++count_;
  }
  int failures() const { return failures_; }
  int count() const { return count_; }

 private:
  int failures_ = 0, count_ = 0;
};

class Golden {
 public:
  explicit Golden(const std::string& path) : file_(read_safetensors(path)), path_(path) {}

  bool has(const std::string& name) const { return file_.find(name) != nullptr; }
  torch::Tensor tensor(const std::string& name) const {
    const SafetensorsEntry* entry = file_.find(name);
    if (!entry) throw std::runtime_error(fmt::format("{}: no tensor \"{}\"", path_, name));
    return entry_to_tensor(*entry);
  }
  std::string meta(const std::string& key) const {
    const auto it = file_.metadata.find(key);
    if (it == file_.metadata.end()) throw std::runtime_error(fmt::format("{}: no metadata \"{}\"", path_, key));
    return it->second;
  }
  int64_t meta_int(const std::string& key) const { return std::stoll(meta(key)); }

 private:
  SafetensorsFile file_;
  std::string path_;
};

std::string shape_of(const torch::Tensor& t) { return fmt::format("[{}]", fmt::join(t.sizes(), ", ")); }

void compare_floats(Checks& checks, const std::string& name, const torch::Tensor& ours, const torch::Tensor& reference) {
  if (ours.sizes() != reference.sizes()) {
    checks.report(false, name, fmt::format("shape {} but the reference has {}", shape_of(ours), shape_of(reference)));
    return;
  }
  const torch::Tensor a = ours.to(torch::kCPU, torch::kDouble), b = reference.to(torch::kDouble);
  const bool finite = torch::isfinite(a).all().item<bool>();
  const double scale = b.abs().max().item<double>();
  const torch::Tensor difference = (a - b).abs();
  const double relative = difference.max().item<double>() / scale;
  // Elementwise relative differences, over the elements not near zero (|b| ≥ 1e-3 · max |b|).
  const torch::Tensor significant = b.abs() >= 1e-3 * scale;
  const double elementwise = (difference / b.abs()).masked_select(significant).max().item<double>();
  const bool ok = finite && relative <= kTolerance;
  checks.report(ok, name,
                fmt::format("{} max|a-b|/max|b| = {:.2e} (tolerance {:.0e}); largest elementwise rel. diff "
                            "{:.2e} (where |b| >= 1e-3 max|b|){}",
                            shape_of(ours), relative, kTolerance, elementwise, finite ? "" : "; NOT FINITE"));
}

void compare_ids(Checks& checks, const std::string& name, const torch::Tensor& ours, const torch::Tensor& reference) {
  if (ours.sizes() != reference.sizes()) {
    checks.report(false, name, fmt::format("shape {} but the reference has {}", shape_of(ours), shape_of(reference)));
    return;
  }
  const torch::Tensor a = ours.to(torch::kCPU, torch::kLong), b = reference.to(torch::kLong);
  const int64_t differ = a.ne(b).sum().item<int64_t>();
  std::string detail = fmt::format("{} {} of {} differ", shape_of(ours), differ, b.numel());
  if (differ) {
    const torch::Tensor first = a.ne(b).flatten().nonzero().flatten()[0];
    const int64_t at = first.item<int64_t>();
    detail += fmt::format(" (first at flat index {}: ours {}, reference {})", at, a.flatten()[at].item<int64_t>(),
                          b.flatten()[at].item<int64_t>());
  }
  checks.report(differ == 0, name, detail);
}

void check_config(Checks& checks, const ModelConfig& config, const Golden& golden) {
  auto check_section = [&](const std::string& name, const Json& ours, const Json& expected) {
    std::vector<std::string> wrong;
    for (const auto& [key, value] : expected.items()) {
      const Json* actual = maskgit::json_find(ours, key);
      if (!actual || *actual != value)
        wrong.push_back(fmt::format("{}: {} (expected {})", key, actual ? dump_json(*actual) : "missing", dump_json(value)));
    }
    checks.report(wrong.empty(), name,
                  wrong.empty() ? fmt::format("{} fields as expected", expected.size()) : fmt::format("{}", fmt::join(wrong, "; ")));
  };
  check_section("config: tokenizer", config.tokenizer->to_json(), parse_json(golden.meta("expected_tokenizer")));
  check_section("config: transformer", config.transformer->to_json(), parse_json(golden.meta("expected_transformer")));
  const int64_t width = golden.meta_int("image_width"), height = golden.meta_int("image_height");
  const int64_t channels = golden.meta_int("image_channels"), classes = golden.meta_int("num_classes");
  const bool ok = config.image_width == width && config.image_height == height && config.image_channels == channels &&
                  config.num_classes() == classes;
  checks.report(ok, "config: image and classes",
                fmt::format("{}x{}x{}, {} classes (expected {}x{}x{}, {})", config.image_width, config.image_height,
                            config.image_channels, config.num_classes(), width, height, channels, classes));
  const int64_t vocabulary = golden.meta_int("vocabulary_size");
  checks.report(config.transformer->vocabulary_size() == vocabulary && config.transformer->mask_token() == vocabulary - 1,
                "config: mask token",
                fmt::format("vocabulary {}, mask token {} (the release's -1 wraps to {})",
                            config.transformer->vocabulary_size(), config.transformer->mask_token(), vocabulary - 1));
}

// The release's ids (-1 for [MASK]) → ours (mask_token()).
torch::Tensor ours_from_release(const torch::Tensor& ids, int64_t mask_token) {
  return torch::where(ids == -1, torch::full_like(ids, mask_token), ids);
}

void check_decoding(Checks& checks, const std::string& prefix, const Golden& golden, BidirectionalTransformer& transformer) {
  const TransformerConfig& tc = transformer->config();
  const torch::Tensor input = golden.tensor(prefix + "_input_ids");
  const torch::Tensor seeds_tensor = golden.tensor(prefix + "_seeds");
  const torch::Tensor expected = golden.tensor(prefix + "_output_ids");
  const torch::Tensor expected_masks = golden.tensor(prefix + "_masked_after_step");  // [T, B, N]
  DecodeRequest request;
  request.ids = ours_from_release(input.slice(1, 1), tc.mask_token());
  request.class_tokens = input.select(1, 0).clone();
  request.mask_id = tc.mask_token();
  request.grid_width = tc.grid_width;
  for (int64_t b = 0; b < seeds_tensor.size(0); ++b)
    request.seeds.push_back(static_cast<uint64_t>(seeds_tensor[b].item<int64_t>()));
  DecodeOptions options;
  options.steps = golden.meta_int(prefix + "_steps");
  options.start_step = golden.meta_int(prefix + "_start_step");
  options.choice_temperature = std::stod(golden.meta("choice_temperature"));
  std::vector<torch::Tensor> masks(static_cast<size_t>(options.steps));
  const LogitsFunction logits_of = [&](const torch::Tensor& ids, const torch::Tensor& classes) {
    return transformer->image_logits(ids, classes);
  };
  const StepObserver observe = [&](int64_t step, const torch::Tensor& still_masked) {
    masks[static_cast<size_t>(step)] = still_masked.to(torch::kLong);
  };
  const torch::Tensor output = decode_tokens(request, options, logits_of, observe);
  int64_t step_mismatches = 0, first_bad = -1;
  for (int64_t step = options.start_step; step < options.steps; ++step) {
    const torch::Tensor& ours = masks[static_cast<size_t>(step)];
    if (!ours.defined() || !torch::equal(ours, expected_masks[step])) {
      ++step_mismatches;
      if (first_bad < 0) first_bad = step;
    }
  }
  checks.report(step_mismatches == 0, prefix + ": masks after each step",
                step_mismatches == 0 ? fmt::format("{} steps equal", options.steps - options.start_step)
                                     : fmt::format("{} steps differ, the first at step {}", step_mismatches, first_bad));
  compare_ids(checks, fmt::format("{}: final ids (T={}, from {})", prefix, options.steps, options.start_step), output,
              expected.slice(1, 1));
}

void check_rng(Checks& checks, const Golden& golden) {
  const torch::Tensor seeds_tensor = golden.tensor("rng_seeds");
  std::vector<uint64_t> seeds;
  for (int64_t b = 0; b < seeds_tensor.size(0); ++b) seeds.push_back(static_cast<uint64_t>(seeds_tensor[b].item<int64_t>()));
  const torch::Tensor expected = golden.tensor("rng_uniform_step3_stream1");
  const CounterRng rng(seeds, 4, 2, torch::kCPU);
  const torch::Tensor loop = rng.uniform(3, 1, expected.size(1));
  const torch::Tensor ops = rng.uniform_with_tensor_ops(3, 1, expected.size(1));
  const bool ok = torch::equal(loop, expected) && torch::equal(ops, expected);
  checks.report(ok, "rng: counter generator",
                fmt::format("{} seeds x {} numbers {}", seeds.size(), expected.size(1), ok ? "bit for bit equal" : "DIFFER"));
}

void check_schedules(Checks& checks, const Golden& golden) {
  for (const auto& [tokens, steps] : std::vector<std::pair<int64_t, int64_t>>{{256, 8}, {256, 12}, {1024, 12}}) {
    const torch::Tensor expected = golden.tensor(fmt::format("schedule_cosine_N{}_T{}", tokens, steps));
    DecodeOptions options;
    options.steps = steps;
    const torch::Tensor table = masked_count_table(torch::full({1}, tokens, torch::kLong), options);  // [T, 1]
    std::vector<int64_t> ours;
    for (int64_t t = 0; t + 1 < steps; ++t) ours.push_back(table[t][0].item<int64_t>());
    // The table holds 0 for the last step (nothing is re-masked after it); the release's
    // discarded count there is masked_after_step's.
    ours.push_back(masked_after_step(options.schedule, steps - 1, steps, tokens, ours.back()));
    std::vector<int64_t> reference(expected.data_ptr<int64_t>(), expected.data_ptr<int64_t>() + expected.numel());
    checks.report(ours == reference, fmt::format("schedule: N={} T={}", tokens, steps),
                  fmt::format("{}{}", fmt::join(ours, " "), ours == reference ? "" : fmt::format(" (reference {})", fmt::join(reference, " "))));
  }
}

int run(const std::string& model_dir, const std::string& golden_path) {
  torch::NoGradGuard no_grad;
  const auto started = std::chrono::steady_clock::now();
  const Golden golden(golden_path);
  fmt::print("release parity: {} against {} (variant {})\n", model_dir, golden_path, golden.meta("variant"));
  Checks checks;
  const ModelConfig config = read_model_config(model_dir);
  if (!config.tokenizer || !config.transformer) {
    checks.report(false, "config", "the model directory lacks a tokenizer or transformer section");
    return 1;
  }
  check_config(checks, config, golden);
  VQTokenizer tokenizer = load_tokenizer(config, torch::kCPU);
  BidirectionalTransformer transformer = load_transformer(config, torch::kCPU);

  const torch::Tensor images = golden.tensor("tok_encode_images");
  compare_floats(checks, "tokenizer: encoder latents", tokenizer->encoder(images), golden.tensor("tok_encode_latents"));
  compare_ids(checks, "tokenizer: encode ids", tokenizer->encode(images), golden.tensor("tok_encode_ids"));
  compare_floats(checks, "tokenizer: decode pixels", tokenizer->decode(golden.tensor("tok_decode_ids")),
                 golden.tensor("tok_decode_images"));

  const int64_t mask = config.transformer->mask_token(), codes = config.transformer->codebook_size;
  const torch::Tensor release_ids = golden.tensor("tf_logits_ids");
  const torch::Tensor expected_logits = golden.tensor("tf_logits");
  compare_floats(checks, "transformer: logits", transformer->forward(ours_from_release(release_ids, mask)),
                 expected_logits);
  compare_floats(checks, "transformer: image logits",
                 transformer->image_logits(ours_from_release(release_ids.slice(1, 1), mask), release_ids.select(1, 0)),
                 expected_logits.slice(1, 1).slice(2, 0, codes));

  check_rng(checks, golden);
  check_schedules(checks, golden);
  for (const char* prefix : {"gen", "edit"})
    if (golden.has(std::string(prefix) + "_input_ids")) check_decoding(checks, prefix, golden, transformer);

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  fmt::print("release parity: {} of {} checks failed ({:.1f} s); reference margins (min, relative): {}\n",
             checks.failures(), checks.count(), seconds, golden.meta("margins"));
  return checks.failures() ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    fmt::print(stderr, "usage: {} MODEL_DIR GOLDEN.safetensors\n", argv[0]);
    return 2;
  }
  try {
    return run(argv[1], argv[2]);
  } catch (const std::exception& e) {
    fmt::print(stderr, "release_parity: {}\n", e.what());
    return 2;
  }
}
