#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "io/image.h"
#include "io/safetensors.h"
#include "io/tensor_io.h"
#include "model/model_dir.h"
#include "training/adam.h"
#include "training/interrupt.h"
#include "training/metrics_log.h"
#include "training/tokenizer_trainer.h"

#include "test_support.h"

// Catch2 comes last: LibTorch pulls in glog, whose CHECK macro would replace Catch's.
#include <catch2/catch.hpp>

using namespace maskgit;
namespace fs = std::filesystem;

namespace {

// An image folder of 8×8 grey pictures in two classes: horizontal and vertical bars at
// random positions, which a tiny tokenizer can learn in a few dozen steps.
fs::path make_bar_dataset(const fs::path& root) {
  torch::manual_seed(7);
  for (int cls = 0; cls < 2; ++cls) {
    const fs::path folder = root / (cls == 0 ? "horizontal" : "vertical");
    fs::create_directories(folder);
    for (int i = 0; i < 32; ++i) {
      torch::Tensor image = torch::zeros({1, 8, 8});
      const int64_t position = torch::randint(0, 7, {1}).item<int64_t>();
      if (cls == 0) image.slice(1, position, position + 2).fill_(1.0);
      else image.slice(2, position, position + 2).fill_(1.0);
      write_png((folder / (std::to_string(i) + ".png")).string(), image);
    }
  }
  return root;
}

TokenizerTrainOptions tiny_options(const fs::path& data, const fs::path& out) {
  TokenizerTrainOptions options;
  options.data.path = data.string();
  options.model_dir = out.string();
  options.config.filters = 8;
  options.config.channel_multipliers = {1, 2};
  options.config.codebook_size = 16;
  options.config.embedding_dim = 4;
  options.config.norm_groups = 4;
  options.batch_size = 16;
  options.learning_rate = 3e-3;
  options.warmup_steps = 5;
  options.log_every = 10;
  options.checkpoint_every = 10;
  options.dead_code_window = 10;
  options.quiet = true;
  return options;
}

}  // namespace

TEST_CASE("a tiny tokenizer training run lowers its loss and writes a usable model", "[training]") {
  torch::set_num_threads(1);
  const fs::path dir = testing::fresh_temp_dir("train-falls");
  const fs::path data = make_bar_dataset(dir / "data");
  TokenizerTrainOptions options = tiny_options(data, dir / "model");
  options.steps = 80;
  const TokenizerTrainResult result = train_tokenizer(options);
  CHECK(result.steps_done == 80);
  CHECK_FALSE(result.interrupted);
  INFO("first loss " << result.first_loss << ", last loss " << result.last_loss);
  CHECK(result.last_loss < 0.5 * result.first_loss);

  const ModelConfig model = read_model_config(options.model_dir);
  CHECK((model.class_names == std::vector<std::string>{"horizontal", "vertical"}));
  CHECK(model.image_width == 8);
  VQTokenizer tokenizer = load_tokenizer(model, torch::kCPU);
  CHECK(tokenizer->encode(torch::rand({1, 1, 8, 8})).sizes() == torch::IntArrayRef({1, 4, 4}));
  CHECK(fs::exists(options.resolved_metrics_path()));
  fs::remove_all(dir);
}

TEST_CASE("a resumed run ends exactly where an uninterrupted one does", "[training]") {
  torch::set_num_threads(1);
  const fs::path dir = testing::fresh_temp_dir("train-resume");
  const fs::path data = make_bar_dataset(dir / "data");

  TokenizerTrainOptions straight = tiny_options(data, dir / "straight");
  straight.steps = 30;
  train_tokenizer(straight);

  TokenizerTrainOptions split = tiny_options(data, dir / "split");
  split.steps = 30;
  split.stop_after = 20;  // as if killed right after the step-20 checkpoint
  CHECK(train_tokenizer(split).steps_done == 20);
  split.stop_after = -1;
  split.resume = true;
  split.seed = 999;  // ignored on resume: the checkpoint's seed wins
  const TokenizerTrainResult resumed = train_tokenizer(split);
  CHECK(resumed.steps_done == 30);

  const SafetensorsFile a = read_safetensors((dir / "straight" / kTokenizerWeightsFile).string());
  const SafetensorsFile b = read_safetensors((dir / "split" / kTokenizerWeightsFile).string());
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    INFO(a.tensors[i].name);
    CHECK(torch::allclose(entry_to_tensor(a.tensors[i]), entry_to_tensor(b.tensors[i]), 1e-5, 1e-6));
  }
  // The metrics log of the resumed run describes one history: no step twice.
  CHECK((testing::metrics_log_steps(split.resolved_metrics_path()) == std::vector<int64_t>{10, 20, 30}));
  fs::remove_all(dir);
}

TEST_CASE("an interrupt saves a checkpoint and stops", "[training]") {
  torch::set_num_threads(1);
  const fs::path dir = testing::fresh_temp_dir("train-interrupt");
  const fs::path data = make_bar_dataset(dir / "data");
  TokenizerTrainOptions options = tiny_options(data, dir / "model");
  options.steps = 1000;
  request_interrupt(true);
  const TokenizerTrainResult result = train_tokenizer(options);
  request_interrupt(false);
  CHECK(result.interrupted);
  CHECK(result.steps_done == 0);
  const SafetensorsFile state = read_safetensors(options.state_path());
  CHECK(state.metadata.at("step") == "0");
  fs::remove_all(dir);
}

TEST_CASE("resume without a checkpoint is a clear error", "[training]") {
  const fs::path dir = testing::fresh_temp_dir("train-noresume");
  TokenizerTrainOptions options = tiny_options(dir / "data", dir / "model");
  options.resume = true;
  CHECK_THROWS_WITH(train_tokenizer(options), Catch::Contains("--resume") && Catch::Contains("tokenizer.safetensors"));
  fs::remove_all(dir);
}

TEST_CASE("Adam state round-trips through safetensors", "[training]") {
  torch::Tensor weight = torch::randn({3, 4}).requires_grad_(true);
  Adam adam({{"w", weight}}, AdamOptions{});
  (weight * weight).sum().backward();
  adam.step(0.1);
  SafetensorsFile file;
  adam.save_state(file);

  torch::Tensor other = weight.detach().clone().requires_grad_(true);
  Adam restored({{"w", other}}, AdamOptions{});
  restored.load_state(parse_safetensors(serialize_safetensors(file), "state"), "state");
  CHECK(restored.steps_taken() == 1);
  adam.zero_grad();
  (weight * weight).sum().backward();
  (other * other).sum().backward();
  adam.step(0.1);
  restored.step(0.1);
  CHECK(torch::allclose(weight, other));
}

TEST_CASE("warm-up then cosine learning rate", "[training]") {
  CHECK(warmup_cosine_lr(0, 100, 10, 1.0, 0.1) == Approx(0.1));
  CHECK(warmup_cosine_lr(9, 100, 10, 1.0, 0.1) == Approx(1.0));
  CHECK(warmup_cosine_lr(10, 100, 10, 1.0, 0.1) == Approx(1.0));
  CHECK(warmup_cosine_lr(55, 100, 10, 1.0, 0.1) == Approx(0.55));
  CHECK(warmup_cosine_lr(100, 100, 10, 1.0, 0.1) == Approx(0.1));
}
