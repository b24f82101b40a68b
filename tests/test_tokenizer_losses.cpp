// The VQGAN-style refinements of tokenizer training (docs/training.md §4): the patch
// discriminator and its losses, the perceptual loss, decoder-only fine-tuning, their
// checkpoints (bit-exact resume, refusals), and the judged reconstruction evaluation.
#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "common/error.h"
#include "eval/classifier.h"
#include "eval/frechet.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "io/tensor_io.h"
#include "model/model_dir.h"
#include "tokenizer/discriminator.h"
#include "tokenizer/evaluate.h"
#include "tokenizer/perceptual.h"
#include "training/engine.h"
#include "training/tokenizer_trainer.h"

#include "test_support.h"
#include "training_fixtures.h"

// Catch2 comes last: LibTorch pulls in glog, whose CHECK macro would replace Catch's.
#include <catch2/catch.hpp>

#include "test_errors.h"

using namespace maskgit;
using maskgit::testing::require_error;
namespace fs = std::filesystem;

namespace {

fs::path make_bars(const fs::path& root) { return testing::make_bar_dataset(root, 11); }

ClassifierConfig tiny_network_config() {
  ClassifierConfig config;
  config.height = 8;
  config.width = 8;
  config.num_classes = 2;
  config.width_multiplier = 0.125;  // 4 and 8 channels
  config.feature_dim = 8;
  return config;
}

// A randomly initialised 8×8 classifier directory (a perceptual network or a judge).
fs::path make_network(const fs::path& dir, uint64_t seed) {
  torch::manual_seed(seed);
  Classifier network(tiny_network_config());
  save_classifier(dir.string(), network, {"horizontal", "vertical"});
  return dir;
}

// The training tests' tiny run, logging, checkpointing and restarting codes every 5 steps, with
// a small discriminator.
TokenizerTrainOptions tiny(const fs::path& data, const fs::path& out) {
  TokenizerTrainOptions options = testing::tiny_tokenizer_training(data, out);
  options.log_every = 5;
  options.checkpoint_every = 5;
  options.dead_code_window = 5;
  options.discriminator.filters = 8;
  return options;
}

}  // namespace

TEST_CASE("the patch discriminator gives one logit per patch and the release's loss family", "[tokenizer-losses]") {
  DiscriminatorConfig config;
  config.filters = 4;
  config.layers = 2;
  PatchDiscriminator discriminator(config);
  CHECK(discriminator->forward(torch::rand({3, 1, 8, 8})).sizes() == torch::IntArrayRef({3, 1, 2, 2}));
  CHECK(discriminator->forward(torch::rand({2, 1, 28, 28})).sizes() == torch::IntArrayRef({2, 1, 7, 7}));
  // Parameter names follow the layout of the other modules (Conv_i, GroupNorm_i).
  std::vector<std::string> names;
  for (const auto& item : discriminator->named_parameters()) names.push_back(item.key());
  CHECK((names == std::vector<std::string>{"Conv_0.weight", "Conv_0.bias", "Conv_1.weight", "Conv_1.bias",
                                           "GroupNorm_0.weight", "GroupNorm_0.bias", "Conv_out.weight",
                                           "Conv_out.bias"}));

  // Non-saturating losses: at logits 0 each term is log 2.
  const torch::Tensor zero = torch::zeros({2, 1, 2, 2});
  CHECK(discriminator_loss(zero, zero).item<double>() == Approx(2 * std::log(2.0)));
  CHECK(generator_adversarial_loss(zero).item<double>() == Approx(std::log(2.0)));
  // Confident and right: small; confident and wrong: large.
  CHECK(discriminator_loss(torch::full({1}, 10.0), torch::full({1}, -10.0)).item<double>() < 1e-3);
  CHECK(discriminator_loss(torch::full({1}, -10.0), torch::full({1}, 10.0)).item<double>() > 19);

  // R1 of a linear critic D(x) = 3·Σx is |3|² per pixel: 9 · 64 for an 8×8 image.
  const torch::Tensor real = torch::rand({2, 1, 8, 8}).requires_grad_(true);
  const torch::Tensor logits = (3.0 * real).sum({1, 2, 3});
  CHECK(r1_penalty(logits, real).item<double>() == Approx(9.0 * 64));
  // With patch logits the image's score is their mean: four patches of 3·Σx score 3·Σx.
  const torch::Tensor patches = logits.view({2, 1, 1, 1}).expand({2, 1, 2, 2});
  CHECK(r1_penalty(patches, real).item<double>() == Approx(9.0 * 64));
  // A critic of one half of the image: only those pixels count.
  const torch::Tensor half = (3.0 * real.narrow(3, 0, 4)).sum({1, 2, 3});
  CHECK(r1_penalty(half, real).item<double>() == Approx(9.0 * 32));

  // Bad configurations name the field.
  config.layers = 0;
  CHECK_THROWS_WITH(config.validate(), Catch::Contains("discriminator.layers"));
  CHECK_THROWS_WITH(DiscriminatorConfig::from_json(Json{{"channels", 1}, {"filters", 8}}, "d"),
                    Catch::Contains("d.layers"));
  CHECK_THROWS_WITH(DiscriminatorConfig::from_json(Json{{"channels", 1}, {"filters", 8}, {"layers", 2}, {"x", 1}}, "d"),
                    Catch::Contains("d.x"));
}

TEST_CASE("the perceptual loss is zero on identical images and trains only the reconstruction", "[tokenizer-losses]") {
  torch::set_num_threads(1);
  const fs::path dir = testing::fresh_temp_dir("perceptual");
  const fs::path network = make_network(dir / "net", 3);
  PerceptualLoss loss(network.string(), 1, torch::kCPU);
  CHECK(loss.weights_sha256().size() == 64);

  const torch::Tensor images = torch::rand({4, 1, 8, 8});
  CHECK(loss(images.clone(), images).item<double>() == Approx(0.0).margin(1e-9));
  const torch::Tensor reconstructions = torch::rand({4, 1, 8, 8}).requires_grad_(true);
  const torch::Tensor value = loss(reconstructions, images);
  CHECK(value.item<double>() > 0);
  value.backward();
  REQUIRE(reconstructions.grad().defined());
  CHECK(reconstructions.grad().abs().sum().item<double>() > 0);
  // A padded tokenizer input (larger than the network's) is cropped to the network's size.
  CHECK(loss(torch::rand({2, 1, 12, 12}), torch::rand({2, 1, 12, 12})).dim() == 0);

  // Smaller images than the network takes, a network for other channels, a missing one: bad
  // input naming the directory.
  require_error([&] { loss.check_image_size(4, 8); }, ExitCode::bad_input, {network.string(), "8×8"});
  require_error([&] { loss.check_image_size(12, 8); }, ExitCode::bad_input, {network.string(), "8×8"});
  CHECK_NOTHROW(loss.check_image_size(8, 8));
  require_error([&] { PerceptualLoss(network.string(), 3, torch::kCPU); }, ExitCode::bad_input,
                {network.string(), "channel"});
  require_error([&] { PerceptualLoss((dir / "missing").string(), 1, torch::kCPU); }, ExitCode::bad_input,
                {(dir / "missing").string()});
  fs::remove_all(dir);
}

TEST_CASE("perceptual + adversarial tokenizer training resumes bit for bit, discriminator included",
          "[tokenizer-losses][training]") {
  torch::set_num_threads(1);
  const fs::path dir = testing::fresh_temp_dir("gan-resume");
  const fs::path data = make_bars(dir / "data");
  const fs::path network = make_network(dir / "net", 5);

  auto options_for = [&](const fs::path& out) {
    TokenizerTrainOptions options = tiny(data, out);
    options.steps = 15;
    options.perceptual_model = network.string();
    options.adversarial_weight = 0.5;
    options.adversarial_start = 3;
    options.r1_weight = 1.0;
    return options;
  };
  // On resume the losses come from the checkpoint: the options' (none here) are ignored.
  const auto resume_for = [&](const fs::path& out) {
    TokenizerTrainOptions resumed = tiny(data, out);
    resumed.steps = 15;
    resumed.resume = true;
    return resumed;
  };
  CHECK(testing::resume_differences(options_for, resume_for, dir, 10).empty());
  const TokenizerTrainOptions straight = options_for(dir / "straight");

  // The checkpoint holds the discriminator, its optimizer and the losses.
  const SafetensorsFile state = read_safetensors(training_state_path((dir / "straight").string(), "tokenizer"));
  bool has_discriminator = false, has_moments = false;
  for (const auto& entry : state.tensors) {
    has_discriminator |= entry.name == "discriminator.Conv_0.weight";
    has_moments |= entry.name == "discriminator_adam.Conv_0.weight.m";
  }
  CHECK(has_discriminator);
  CHECK(has_moments);
  CHECK(state.metadata.at("discriminator_adam.step") == "12");  // steps 3..14
  const Json losses = parse_json(state.metadata.at("tokenizer_losses"));
  CHECK(losses.at("adversarial_weight").get<double>() == 0.5);
  CHECK(losses.at("perceptual_model").get<std::string>() == network.string());

  // The metrics log carries the new terms.
  const std::string log = testing::read_text(straight.resolved_metrics_path());
  CHECK_THAT(log, Catch::Contains("\"perceptual_loss\"") && Catch::Contains("\"discriminator_loss\"") &&
                      Catch::Contains("\"adaptive_weight\""));

  // Another perceptual network under the same path: refused on resume, naming it.
  make_network(network, 6);
  TokenizerTrainOptions again = tiny(data, dir / "straight");
  again.steps = 20;
  again.resume = true;
  require_error([&] { train_tokenizer(again); }, ExitCode::bad_input, {network.string(), "changed"});
  fs::remove_all(dir);
}

TEST_CASE("a checkpoint's tokenizer_losses metadata is validated", "[tokenizer-losses][training]") {
  torch::set_num_threads(1);
  const fs::path dir = testing::fresh_temp_dir("gan-metadata");
  const fs::path data = make_bars(dir / "data");
  TokenizerTrainOptions options = tiny(data, dir / "run");
  options.steps = 10;
  options.stop_after = 5;
  options.adversarial_weight = 0.1;
  train_tokenizer(options);
  const std::string state_path = training_state_path(options.model_dir, "tokenizer");
  const SafetensorsFile good = read_safetensors(state_path);
  const Json losses = parse_json(good.metadata.at("tokenizer_losses"));

  const std::vector<std::pair<std::string, std::string>> table = {
      {"not json", "tokenizer_losses"},
      {"[1]", "tokenizer_losses"},
  };
  std::vector<std::pair<std::string, std::string>> cases = table;
  auto edited = [&](const char* key, const Json& value) {
    Json copy = losses;
    copy[key] = value;
    return dump_json(copy);
  };
  cases.push_back({edited("adversarial_weight", -1), "adversarial_weight"});
  cases.push_back({edited("adversarial_weight", "x"), "adversarial_weight"});
  cases.push_back({edited("decoder_only", 1), "decoder_only"});
  cases.push_back({edited("discriminator_lr", 0), "discriminator_lr"});
  cases.push_back({edited("discriminator", Json{{"channels", 1}, {"filters", 0}, {"layers", 2}}), "discriminator.filters"});
  cases.push_back({edited("perceptual_model", 3), "perceptual_model"});
  cases.push_back({edited("adversarial_start", 2.7), "adversarial_start"});
  cases.push_back({edited("dead_code_window", -1), "dead_code_window"});
  cases.push_back({edited("perceptual_model", "/somewhere"), "perceptual_sha256"});  // a model needs its hash
  cases.push_back({edited("perceptual_sha256", "abc"), "perceptual_sha256"});        // no model, a hash
  cases.push_back({edited("surprise", 1), "surprise: unknown field"});
  {
    Json copy = losses;
    copy.erase("r1_weight");
    cases.push_back({dump_json(copy), "r1_weight"});
  }
  for (const auto& [value, needle] : cases) {
    INFO(value);
    SafetensorsFile bad = good;
    bad.metadata["tokenizer_losses"] = value;
    write_safetensors(state_path, bad);
    TokenizerTrainOptions resume = tiny(data, dir / "run");
    resume.steps = 10;
    resume.resume = true;
    require_error([&] { train_tokenizer(resume); }, ExitCode::bad_input, {state_path, needle});
  }
  // A checkpoint of the plain trainer (no tokenizer_losses) resumes as plain MSE training.
  SafetensorsFile plain = good;
  plain.metadata.erase("tokenizer_losses");
  for (auto it = plain.tensors.begin(); it != plain.tensors.end();)
    it = it->name.rfind("discriminator", 0) == 0 ? plain.tensors.erase(it) : std::next(it);
  for (auto it = plain.metadata.begin(); it != plain.metadata.end();)
    it = it->first.rfind("discriminator", 0) == 0 ? plain.metadata.erase(it) : std::next(it);
  write_safetensors(state_path, plain);
  TokenizerTrainOptions resume = tiny(data, dir / "run");
  resume.steps = 10;
  resume.resume = true;
  CHECK(train_tokenizer(resume).steps_done == 10);
  const SafetensorsFile after = read_safetensors(state_path);
  CHECK(parse_json(after.metadata.at("tokenizer_losses")).at("adversarial_weight").get<double>() == 0);
  fs::remove_all(dir);
}

TEST_CASE("decoder-only fine-tuning keeps the encoder and codebook, so token grids stay valid",
          "[tokenizer-losses][training]") {
  torch::set_num_threads(1);
  const fs::path dir = testing::fresh_temp_dir("decoder-only");
  const fs::path data = make_bars(dir / "data");
  TokenizerTrainOptions base = tiny(data, dir / "base");
  base.steps = 10;
  train_tokenizer(base);

  auto tuned_options = [&](const fs::path& out) {
    TokenizerTrainOptions tuned = tiny(data, out);
    tuned.steps = 10;
    tuned.init_from = base.model_dir;
    tuned.decoder_only = true;
    tuned.perceptual_model = (dir / "net").string();
    tuned.adversarial_weight = 0.5;
    tuned.config.filters = 4;      // ignored: the architecture is the starting model's
    tuned.dead_code_window = 1;    // ignored: restarts would change the codebook
    return tuned;
  };
  make_network(dir / "net", 8);
  TokenizerTrainOptions tuned = tuned_options(dir / "tuned");
  train_tokenizer(tuned);
  const SafetensorsFile state = read_safetensors(training_state_path(tuned.model_dir, "tokenizer"));
  const Json recorded = parse_json(state.metadata.at("tokenizer_losses"));
  CHECK(recorded.at("decoder_only").get<bool>());
  CHECK(recorded.at("dead_code_window").get<int64_t>() == 0);
  CHECK(fs::path(recorded.at("init_from").get<std::string>()).is_absolute());

  // Interrupted and resumed (from the checkpoint alone): the same model as straight through.
  const auto resume_for = [&](const fs::path& out) {
    TokenizerTrainOptions resumed = tiny(data, out);
    resumed.steps = 10;
    resumed.resume = true;
    return resumed;
  };
  CHECK(testing::resume_differences(tuned_options, resume_for, dir / "resume", 6).empty());

  const ModelConfig a = read_model_config(base.model_dir), b = read_model_config(tuned.model_dir);
  CHECK(a.tokenizer->to_json() == b.tokenizer->to_json());
  VQTokenizer before = load_tokenizer(a, torch::kCPU), after = load_tokenizer(b, torch::kCPU);
  const auto old_parameters = before->named_parameters();
  int decoder_changed = 0;
  for (const auto& item : after->named_parameters()) {
    INFO(item.key());
    const bool same = torch::equal(item.value(), old_parameters[item.key()]);
    if (item.key().rfind("decoder.", 0) == 0) decoder_changed += same ? 0 : 1;
    else CHECK(same);
  }
  CHECK(decoder_changed > 0);
  const torch::Tensor images = torch::rand({4, 1, 8, 8});
  CHECK(torch::equal(before->encode(images), after->encode(images)));

  // Without a model to start from: refused, naming the option.
  TokenizerTrainOptions orphan = tiny(data, dir / "orphan");
  orphan.decoder_only = true;
  testing::require_invalid_argument([&] { train_tokenizer(orphan); }, "decoder_only");
  fs::remove_all(dir);
}

TEST_CASE("a judged reconstruction evaluation reports the classifier on originals and reconstructions",
          "[tokenizer-losses]") {
  torch::set_num_threads(1);
  torch::manual_seed(2);
  VQTokenizer tokenizer(testing::tiny_tokenizer_config());
  tokenizer->eval();
  Classifier judge(tiny_network_config());
  judge->eval();
  const torch::Tensor images = torch::rand({10, 1, 8, 8});
  const torch::Tensor labels = torch::tensor({0, 1, 0, 1, 0, 1, 0, 1, 0, 1}, torch::kLong);

  const ReconstructionStats plain = evaluate_reconstruction(tokenizer, images, 4, torch::kCPU);
  CHECK_FALSE(plain.judged);
  ReconstructionJudge with{&judge, labels};
  const ReconstructionStats judged = evaluate_reconstruction(tokenizer, images, 4, torch::kCPU, with);
  REQUIRE(judged.judged);
  CHECK(judged.mean_psnr_db == Approx(plain.mean_psnr_db));
  torch::NoGradGuard no_grad;
  // Codebook use: distinct ids, and the perplexity exp(H) of their frequencies, by hand.
  {
    const torch::Tensor ids = tokenizer->encode(images).flatten();
    std::map<int64_t, double> counts;
    for (int64_t i = 0; i < ids.numel(); ++i) counts[ids[i].item<int64_t>()] += 1;
    double entropy = 0;
    for (const auto& [id, count] : counts) entropy -= count / ids.numel() * std::log(count / ids.numel());
    CHECK(plain.codes_used == static_cast<int64_t>(counts.size()));
    CHECK(plain.codebook_perplexity == Approx(std::exp(entropy)));
    CHECK(plain.codebook_perplexity >= 1);
    CHECK(plain.codebook_perplexity <= plain.codes_used + 1e-9);
  }
  const double expected = judge->forward(images).argmax(1).eq(labels).to(torch::kFloat64).mean().item<double>();
  CHECK(judged.accuracy_originals == Approx(expected));
  const torch::Tensor reconstructions = tokenizer->decode(tokenizer->encode(images), 8, 8).clamp(0, 1);
  const torch::Tensor a = judge->forward(images).argmax(1), b = judge->forward(reconstructions).argmax(1);
  CHECK(judged.accuracy_reconstructions == Approx(b.eq(labels).to(torch::kFloat64).mean().item<double>()));
  CHECK(judged.prediction_agreement == Approx(a.eq(b).to(torch::kFloat64).mean().item<double>()));
  const double distance = frechet_distance(feature_stats(judge->features(reconstructions)), feature_stats(judge->features(images)));
  CHECK(judged.frechet_distance == Approx(distance).epsilon(1e-4));
  CHECK(judged.frechet_distance > 0);
  // Judging the originals against themselves: everything agrees.
  CHECK(frechet_distance(feature_stats(judge->features(images)), feature_stats(judge->features(images))) ==
        Approx(0).margin(1e-6));
}
