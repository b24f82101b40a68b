#include <cmath>
#include <limits>
#include <set>

#include "compat/torch_compat.h"
#include "decoding/counter_rng.h"
#include "decoding/decoder.h"
#include "decoding/schedule.h"

// Catch2 comes last: LibTorch pulls in glog, whose CHECK macro would replace Catch's.
#include <catch2/catch.hpp>

using namespace maskgit;

namespace {

// Masked counts after each step of a full decode from all-masked, the release's arithmetic.
std::vector<int64_t> masked_counts(const MaskSchedule& schedule, int64_t tokens, int64_t steps) {
  std::vector<int64_t> counts;
  int64_t unknown = tokens;
  for (int64_t step = 0; step < steps; ++step) {
    unknown = masked_after_step(schedule, step, steps, tokens, unknown);
    counts.push_back(unknown);
  }
  return counts;
}

std::vector<uint64_t> seeds(int64_t count, uint64_t first) {
  std::vector<uint64_t> out;
  for (int64_t i = 0; i < count; ++i) out.push_back(first + static_cast<uint64_t>(i));
  return out;
}

// A stand-in model: fixed random logits per position, independent of the input.
LogitsFunction fixed_logits(int64_t tokens, int64_t vocabulary) {
  torch::Tensor table = torch::randn({tokens, vocabulary}, compat::make_cpu_generator(42));
  return [table](const torch::Tensor& ids, const torch::Tensor&) {
    return table.unsqueeze(0).expand({ids.size(0), -1, -1}).clone();
  };
}

}  // namespace

TEST_CASE("cosine schedule matches the documented test vectors", "[decoding]") {
  const MaskSchedule cosine = parse_schedule("cosine");
  CHECK((masked_counts(cosine, 256, 8) == std::vector<int64_t>{251, 236, 212, 181, 142, 97, 49, 1}));
  CHECK((masked_counts(cosine, 256, 12) == std::vector<int64_t>{253, 247, 236, 221, 203, 181, 155, 128, 97, 66, 33, 1}));
  CHECK((masked_counts(cosine, 1024, 12) ==
         std::vector<int64_t>{1015, 989, 946, 886, 812, 724, 623, 512, 391, 265, 133, 1}));
}

TEST_CASE("every schedule is parsed, bounded and monotone", "[decoding]") {
  for (const auto& name : schedule_names()) {
    INFO(name);
    const MaskSchedule schedule = parse_schedule(name);
    CHECK(schedule.name() == name);
    double previous = 2;
    for (int i = 0; i <= 20; ++i) {
      const double value = schedule.gamma(i / 20.0, 256);
      CHECK(value >= 1e-6);
      CHECK(value <= 1.0);
      CHECK(value <= previous + 1e-12);
      previous = value;
    }
  }
  CHECK(parse_schedule("linear").gamma(0.25, 10) == Approx(0.75));
  CHECK(parse_schedule("square").gamma(0.5, 10) == Approx(0.75));
  CHECK(parse_schedule("arccos").gamma(1.0, 10) == Approx(1e-6));
  CHECK_THROWS_WITH(parse_schedule("cosin"), Catch::Contains("cosine"));
  CHECK_THROWS(parse_schedule("custom:3,0"));
  const MaskSchedule custom = parse_schedule("custom:10,20,19");
  CHECK((masked_counts(custom, 49, 3) == std::vector<int64_t>{39, 19, 1}));
}

TEST_CASE("the decoder follows the schedule and fills every position", "[decoding]") {
  const int64_t tokens = 256, vocabulary = 16, mask_id = 16;
  DecodeRequest request;
  request.ids = torch::full({2, tokens}, mask_id, torch::kLong);
  request.class_tokens = torch::zeros({2}, torch::kLong);
  request.mask_id = mask_id;
  request.seeds = seeds(2, 7);
  std::vector<int64_t> observed;
  const torch::Tensor out = decode_tokens(request, DecodeOptions{}, fixed_logits(tokens, vocabulary),
                                          [&](int64_t, const torch::Tensor& masked) {
                                            observed.push_back(masked[0].sum().item<int64_t>());
                                          });
  CHECK((observed == std::vector<int64_t>{251, 236, 212, 181, 142, 97, 49, 0}));
  CHECK((out == mask_id).sum().item<int64_t>() == 0);
  CHECK(out.max().item<int64_t>() < vocabulary);
}

TEST_CASE("known ids never change", "[decoding]") {
  const int64_t tokens = 49, mask_id = 10;
  torch::Tensor ids = torch::randint(0, 10, {3, tokens}, compat::make_cpu_generator(1));
  torch::Tensor unknown = torch::rand({3, tokens}, compat::make_cpu_generator(2)) < 0.5;
  ids.masked_fill_(unknown, mask_id);
  for (bool halton : {false, true}) {
    DecodeRequest request;
    request.ids = ids;
    request.class_tokens = torch::zeros({3}, torch::kLong);
    request.mask_id = mask_id;
    request.grid_width = 7;
    request.seeds = seeds(3, 11);
    DecodeOptions options;
    options.halton_order = halton;
    options.steps = 12;
    options.start_step = 2;
    const torch::Tensor out = decode_tokens(request, options, fixed_logits(tokens, 10));
    CHECK(torch::equal(out.masked_select(unknown.logical_not()), ids.masked_select(unknown.logical_not())));
    CHECK((out == mask_id).sum().item<int64_t>() == 0);
  }
}

TEST_CASE("an image depends on its own seed, not on its batch", "[decoding]") {
  const int64_t tokens = 49, mask_id = 8;
  auto decode = [&](int64_t batch, uint64_t first_seed) {
    DecodeRequest request;
    request.ids = torch::full({batch, tokens}, mask_id, torch::kLong);
    request.class_tokens = torch::zeros({batch}, torch::kLong);
    request.mask_id = mask_id;
    request.seeds = seeds(batch, first_seed);
    return decode_tokens(request, DecodeOptions{}, fixed_logits(tokens, 8));
  };
  const torch::Tensor batch_of_four = decode(4, 100);
  CHECK(torch::equal(decode(1, 102)[0], batch_of_four[2]));
  CHECK_FALSE(torch::equal(batch_of_four[0], batch_of_four[1]));
}

TEST_CASE("guidance combines conditional and unconditional logits", "[decoding]") {
  // Conditional logits favour id 1, unconditional id 2; with s = 3, u + s(c − u) strongly
  // favours 1, so (top-k 1) every sample is 1.
  const int64_t tokens = 9, mask_id = 3, no_class = 5;
  LogitsFunction logits_of = [&](const torch::Tensor& ids, const torch::Tensor& classes) {
    torch::Tensor logits = torch::zeros({ids.size(0), tokens, 3});
    for (int64_t b = 0; b < ids.size(0); ++b) logits[b].select(1, classes[b].item<int64_t>() == no_class ? 2 : 1).fill_(2.0);
    return logits;
  };
  DecodeRequest request;
  request.ids = torch::full({1, tokens}, mask_id, torch::kLong);
  request.class_tokens = torch::zeros({1}, torch::kLong);
  request.mask_id = mask_id;
  request.no_class_token = no_class;
  request.seeds = seeds(1, 3);
  DecodeOptions options;
  options.guidance_scale = 3.0;
  options.top_k = 1;
  CHECK((decode_tokens(request, options, logits_of) == 1).all().item<bool>());
  options.guidance_scale = 1.0;  // conditional only: still id 1
  CHECK((decode_tokens(request, options, logits_of) == 1).all().item<bool>());
  options.guidance_scale = 0.0;  // unconditional only: id 2
  CHECK((decode_tokens(request, options, logits_of) == 2).all().item<bool>());
}

TEST_CASE("a linear guidance schedule rises to the scale over the steps", "[decoding]") {
  DecodeOptions options;
  options.guidance_scale = 3.0;
  CHECK(guidance_scale_at(options, 0, 8) == 3.0);  // constant
  CHECK(guidance_scale_at(options, 7, 8) == 3.0);
  options.guidance_schedule = GuidanceSchedule::linear;
  CHECK(guidance_scale_at(options, 0, 8) == Approx(1.25));  // 1 + 2·1/8
  CHECK(guidance_scale_at(options, 3, 8) == Approx(2.0));
  CHECK(guidance_scale_at(options, 7, 8) == 3.0);
  options.guidance_scale = 1.0;  // no guidance stays none
  for (int64_t step = 0; step < 8; ++step) CHECK(guidance_scale_at(options, step, 8) == 1.0);
  CHECK(parse_guidance_schedule("linear") == GuidanceSchedule::linear);
  CHECK(std::string(guidance_schedule_name(GuidanceSchedule::constant)) == "constant");
  CHECK_THROWS_AS(parse_guidance_schedule("cosine"), std::invalid_argument);

  // The decoder uses the step's scale: conditional logits favour id 1, unconditional id 2, so
  // (top-k 1) a token is 1 where s_t > 0.5 and 2 where s_t < 0.5. With s = 0, constant gives 2
  // everywhere; linear gives s_t = 1 − (t+1)/T, so the tokens fixed in the first half are 1 and
  // those of the second half 2.
  const int64_t tokens = 16, mask_id = 3, no_class = 5;
  LogitsFunction logits_of = [&](const torch::Tensor& ids, const torch::Tensor& classes) {
    torch::Tensor logits = torch::zeros({ids.size(0), tokens, 3});
    for (int64_t b = 0; b < ids.size(0); ++b) logits[b].select(1, classes[b].item<int64_t>() == no_class ? 2 : 1).fill_(2.0);
    return logits;
  };
  DecodeRequest request;
  request.ids = torch::full({1, tokens}, mask_id, torch::kLong);
  request.class_tokens = torch::zeros({1}, torch::kLong);
  request.mask_id = mask_id;
  request.no_class_token = no_class;
  request.seeds = seeds(1, 3);
  DecodeOptions decode;
  decode.top_k = 1;
  decode.guidance_scale = 0.0;
  decode.schedule = parse_schedule("linear");  // 2 tokens fixed per step of 8
  CHECK((decode_tokens(request, decode, logits_of) == 2).all().item<bool>());
  decode.guidance_schedule = GuidanceSchedule::linear;
  // Steps 0..2 (s_t = 7/8, 6/8, 5/8) fix 1s, steps 4..7 (s_t ≤ 3/8) 2s; step 3 (s_t = 1/2) ties.
  std::vector<int64_t> fixed_at(tokens, -1);
  StepObserver observe = [&](int64_t step, const torch::Tensor& still_masked) {
    for (int64_t i = 0; i < tokens; ++i)
      if (!still_masked[0][i].item<bool>() && fixed_at[static_cast<size_t>(i)] < 0) fixed_at[static_cast<size_t>(i)] = step;
  };
  const torch::Tensor ids = decode_tokens(request, decode, logits_of, observe)[0];
  int64_t ones = 0, twos = 0;
  for (int64_t i = 0; i < tokens; ++i) {
    const int64_t id = ids[i].item<int64_t>(), step = fixed_at[static_cast<size_t>(i)];
    if (step <= 2) CHECK(id == 1);
    if (step >= 4) CHECK(id == 2);
    ones += id == 1;
    twos += id == 2;
  }
  CHECK(ones >= 2);
  CHECK(twos >= 2);
}

TEST_CASE("the Halton order covers every cell once", "[decoding]") {
  for (auto [h, w] : std::vector<std::pair<int64_t, int64_t>>{{7, 7}, {16, 16}, {3, 10}}) {
    const auto order = halton_order(h, w);
    CHECK(static_cast<int64_t>(order.size()) == h * w);
    CHECK(static_cast<int64_t>(std::set<int64_t>(order.begin(), order.end()).size()) == h * w);
  }
}

TEST_CASE("the counter-based generator: reference values, both paths bit-identical", "[decoding][rng]") {
  // Reference values of the published PCG hash and SplitMix64 output function.
  CHECK(pcg_hash(0) == 129708002u);
  CHECK(pcg_hash(1) == 2831084092u);
  CHECK(splitmix64(0) == 0xe220a8397b1dcdafULL);
  const std::vector<uint64_t> seeds = {0, 1, 4294967296ULL, 18446744073709551615ULL, 12345};
  const CounterRng rng(seeds, 12, 2, torch::kCPU);
  for (int64_t step : {0, 5, 11})
    for (int64_t stream : {0, 1})
      for (int64_t count : {1, 49, 1000, 70001}) {
        INFO("step " << step << " stream " << stream << " count " << count);
        const torch::Tensor fast = rng.uniform(step, stream, count);
        const torch::Tensor ops = rng.uniform_with_tensor_ops(step, stream, count);
        REQUIRE(fast.sizes() == torch::IntArrayRef({5, count}));
        CHECK(torch::equal(fast, ops));
        CHECK(fast.min().item<float>() > 0.0f);
        CHECK(fast.max().item<float>() < 1.0f);
      }
  // Seeds 0 and 2^32 differ (the whole 64-bit seed is used), and so do steps and streams.
  const torch::Tensor row = rng.uniform(0, 0, 64);
  CHECK_FALSE(torch::equal(row[0], row[2]));
  CHECK_FALSE(torch::equal(rng.uniform(0, 0, 64), rng.uniform(1, 0, 64)));
  CHECK_FALSE(torch::equal(rng.uniform(0, 0, 64), rng.uniform(0, 1, 64)));
  // An image's numbers do not depend on the other images of the batch.
  const CounterRng alone({12345}, 12, 2, torch::kCPU);
  CHECK(torch::equal(alone.uniform(3, 1, 500)[0], rng.uniform(3, 1, 500)[4]));
  CHECK_THROWS_AS(rng.uniform(12, 0, 4), std::invalid_argument);
}

TEST_CASE("the counter-based generator is uniform and uncorrelated", "[decoding][rng]") {
  std::vector<uint64_t> many(64);
  for (size_t i = 0; i < many.size(); ++i) many[i] = 1000 + i;
  const torch::Tensor u = CounterRng(many, 1, 1, torch::kCPU).uniform(0, 0, 16384).flatten().to(torch::kDouble);
  const auto n = static_cast<double>(u.numel());  // 1,048,576 draws
  CHECK(u.mean().item<double>() == Approx(0.5).margin(0.002));
  CHECK(u.var().item<double>() == Approx(1.0 / 12).margin(0.001));
  // χ² over 256 equal bins: 255 degrees of freedom, mean 255, sd ≈ 22.6; 400 is p < 1e-8.
  const torch::Tensor counts = torch::histc(u, 256, 0, 1);
  const double expected = n / 256;
  const double chi_square = ((counts - expected).square() / expected).sum().item<double>();
  CHECK(chi_square < 400);
  // Neighbouring indices (what one image's positions see) are uncorrelated.
  const torch::Tensor a = u.slice(0, 0, u.numel() - 1) - 0.5, b = u.slice(0, 1) - 0.5;
  CHECK(std::abs((a * b).mean().item<double>() / (1.0 / 12)) < 0.005);
}

TEST_CASE("decoding samples codes with the model's probabilities", "[decoding][rng]") {
  // One token, one step: the sampled code's frequencies over 20,000 seeds are softmax(logits).
  const int64_t images = 20000, mask_id = 4;
  const torch::Tensor logits = torch::tensor({0.0f, 1.0f, -1.0f, 2.0f});
  DecodeRequest request;
  request.ids = torch::full({images, 1}, mask_id, torch::kLong);
  request.class_tokens = torch::zeros({images}, torch::kLong);
  request.mask_id = mask_id;
  request.seeds = seeds(images, 7);
  DecodeOptions options;
  options.steps = 1;
  const torch::Tensor out = decode_tokens(request, options, [&](const torch::Tensor& ids, const torch::Tensor&) {
    return logits.view({1, 1, 4}).expand({ids.size(0), 1, 4}).contiguous();
  });
  const torch::Tensor frequency = torch::bincount(out.flatten(), {}, 4).to(torch::kDouble) / images;
  const torch::Tensor expected = torch::softmax(logits.to(torch::kDouble), 0);
  for (int64_t k = 0; k < 4; ++k) CHECK(frequency[k].item<double>() == Approx(expected[k].item<double>()).margin(0.01));
}

TEST_CASE("CPU and CUDA decode the same tokens from the same logits", "[decoding][rng][cuda]") {
  if (!torch::cuda::is_available()) {
    WARN("no CUDA device: only the CPU half ran (the tensor-op path is checked against the CPU loop above)");
    return;
  }
  const int64_t tokens = 64, vocabulary = 32, mask_id = 32;
  const torch::Tensor table = torch::randn({tokens, vocabulary}, compat::make_cpu_generator(3)) * 3;
  auto decode_on = [&](const torch::Device& device, int64_t batch) {
    DecodeRequest request;
    request.ids = torch::full({batch, tokens}, mask_id, torch::TensorOptions().device(device).dtype(torch::kLong));
    request.class_tokens = torch::zeros({batch}, torch::TensorOptions().device(device).dtype(torch::kLong));
    request.mask_id = mask_id;
    request.seeds = seeds(batch, 40);
    DecodeOptions options;
    options.top_k = 8;
    const torch::Tensor on_device = table.to(device);
    return decode_tokens(request, options, [&](const torch::Tensor& ids, const torch::Tensor&) {
             return on_device.unsqueeze(0).expand({ids.size(0), -1, -1}).contiguous();
           }).cpu();
  };
  const torch::Tensor cpu = decode_on(torch::kCPU, 6);
  CHECK(torch::equal(decode_on(torch::Device(torch::kCUDA), 6), cpu));
  CHECK(torch::equal(decode_on(torch::Device(torch::kCUDA), 1)[0], cpu[0]));
}

TEST_CASE("a custom schedule counts from the start step", "[decoding]") {
  const int64_t tokens = 49, mask_id = 8;
  DecodeRequest request;
  request.ids = torch::full({1, tokens}, mask_id, torch::kLong);
  request.class_tokens = torch::zeros({1}, torch::kLong);
  request.mask_id = mask_id;
  request.seeds = seeds(1, 1);
  DecodeOptions options;
  options.schedule = parse_schedule("custom:4,8,12");
  options.start_step = 2;
  options.steps = decode_step_count(options.schedule, 8, options.start_step);
  CHECK(options.steps == 5);
  std::vector<int64_t> observed;
  decode_tokens(request, options, fixed_logits(tokens, 8),
                [&](int64_t, const torch::Tensor& masked) { observed.push_back(masked.sum().item<int64_t>()); });
  // Steps 2, 3 and 4 reveal 4, 8, then everything left.
  CHECK((observed == std::vector<int64_t>{45, 37, 0}));
}

TEST_CASE("non-finite logits are reported, not sampled", "[decoding]") {
  const int64_t tokens = 9, mask_id = 4;
  DecodeRequest request;
  request.ids = torch::full({2, tokens}, mask_id, torch::kLong);
  request.ids[0][0] = 1;
  request.class_tokens = torch::zeros({2}, torch::kLong);
  request.mask_id = mask_id;
  request.seeds = seeds(2, 1);
  for (const float bad : {std::nanf(""), std::numeric_limits<float>::infinity()}) {
    const LogitsFunction broken = [&](const torch::Tensor& ids, const torch::Tensor&) {
      torch::Tensor logits = torch::zeros({ids.size(0), tokens, 4});
      logits[1][3][2] = bad;
      return logits;
    };
    CHECK_THROWS_AS(decode_tokens(request, DecodeOptions{}, broken), NonFiniteLogits);
  }
}
