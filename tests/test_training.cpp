#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "io/image.h"
#include "io/safetensors.h"
#include "io/tensor_io.h"
#include "model/model_dir.h"
#include "training/engine.h"
#include "training/interrupt.h"
#include "training/metrics_log.h"
#include "training/optimizer.h"
#include "training/run_guard.h"
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

using testing::make_bar_dataset;

TokenizerTrainOptions tiny_options(const fs::path& data, const fs::path& out) { return testing::tiny_tokenizer_training(data, out); }

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

  const auto options_for = [&](const fs::path& out) {
    TokenizerTrainOptions options = tiny_options(data, out);
    options.steps = 30;
    return options;
  };
  const auto resume_for = [&](const fs::path& out) {
    TokenizerTrainOptions options = options_for(out);
    options.resume = true;
    options.seed = 999;  // ignored on resume: the checkpoint's seed wins
    return options;
  };
  // Killed right after the step-20 checkpoint and resumed: bit for bit the same.
  CHECK(testing::resume_differences(options_for, resume_for, dir, 20).empty());
  // The metrics log of the resumed run describes one history: no step twice.
  CHECK((testing::metrics_log_steps(resume_for(dir / "split").resolved_metrics_path()) == std::vector<int64_t>{10, 20, 30}));
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
  // The request travels with the step's reduction (so that every rank of a data-parallel run
  // stops at the same step): the step in progress completes and is saved.
  CHECK(result.interrupted);
  CHECK(result.steps_done == 1);
  const SafetensorsFile state = read_safetensors(options.state_path());
  CHECK(state.metadata.at("step") == "1");
  CHECK(state.metadata.at("stage") == "tokenizer");
  CHECK(state.metadata.at("ranks") == "1");
  fs::remove_all(dir);
}

TEST_CASE("resume without a checkpoint is a clear error", "[training]") {
  const fs::path dir = testing::fresh_temp_dir("train-noresume");
  TokenizerTrainOptions options = tiny_options(dir / "data", dir / "model");
  options.resume = true;
  CHECK_THROWS_WITH(train_tokenizer(options), Catch::StartsWith("resume: no checkpoint at ") &&
                                                 Catch::Contains("tokenizer.safetensors"));
  // InvalidArgument("resume") (the tool names its --resume), with bad input's exit code.
  const auto resume = testing::invalid_argument_of([&] { train_tokenizer(options); });
  CHECK(resume.argument == "resume");
  CHECK(resume.code == ExitCode::bad_input);
  fs::remove_all(dir);
}

namespace {

// Catches a maskgit::Error and checks its exit code and message.
std::string file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("a fresh run refuses a directory holding the same stage's run unless told to start over", "[training]") {
  torch::set_num_threads(1);
  const fs::path dir = testing::fresh_temp_dir("train-refuse");
  const fs::path data = make_bar_dataset(dir / "data");
  TokenizerTrainOptions options = tiny_options(data, dir / "model");
  options.steps = 10;
  train_tokenizer(options);
  const std::string weights = file_bytes(dir / "model" / kTokenizerWeightsFile);
  const std::string checkpoint = file_bytes(options.state_path());

  // A checkpoint: --resume or --overwrite, and nothing is touched (not even the metrics log).
  const std::vector<int64_t> history = testing::metrics_log_steps(options.resolved_metrics_path());
  options.data.path = (dir / "no-such-data").string();  // refused before the data is read
  require_error([&] { train_tokenizer(options); }, ExitCode::io_error, {options.model_dir, "--resume", "--overwrite"});
  CHECK(file_bytes(dir / "model" / kTokenizerWeightsFile) == weights);
  CHECK(file_bytes(options.state_path()) == checkpoint);
  CHECK(testing::metrics_log_steps(options.resolved_metrics_path()) == history);
  options.resume = options.overwrite = true;
  require_error([&] { train_tokenizer(options); }, ExitCode::usage, {"overwrite: ", "resuming"});
  CHECK(testing::invalid_argument_of([&] { train_tokenizer(options); }).argument == "overwrite");

  // A model without a checkpoint: only --overwrite can replace it.
  fs::remove(options.state_path());
  options.resume = options.overwrite = false;
  require_error([&] { train_tokenizer(options); }, ExitCode::io_error, {options.model_dir, "tokenizer.safetensors", "--overwrite"});

  // --overwrite starts over: a new run with a new seed replaces the model.
  options.data.path = data.string();
  options.overwrite = true;
  options.seed = 5;
  options.steps = 5;
  CHECK(train_tokenizer(options).steps_done == 5);
  CHECK(file_bytes(dir / "model" / kTokenizerWeightsFile) != weights);
  CHECK(read_safetensors(options.state_path()).metadata.at("step") == "5");
  fs::remove_all(dir);
}

TEST_CASE("a run whose loss stops being finite stops and keeps the last checkpoint and model", "[training]") {
  torch::set_num_threads(1);
  const fs::path dir = testing::fresh_temp_dir("train-diverge");
  const fs::path data = make_bar_dataset(dir / "data");
  TokenizerTrainOptions options = tiny_options(data, dir / "model");
  options.steps = 10;
  train_tokenizer(options);
  const std::string weights = file_bytes(dir / "model" / kTokenizerWeightsFile);
  const std::string config = file_bytes(dir / "model" / kModelConfigFile);
  const std::string checkpoint = file_bytes(options.state_path());

  options.resume = true;
  options.steps = 40;
  options.learning_rate = 1e30;  // a real route to NaN: the weights blow up within two steps
  require_error([&] { train_tokenizer(options); }, ExitCode::failure,
                {"tokenizer", "diverged at step", "NaN", "step 10", "kept", "--lr"});
  CHECK(file_bytes(dir / "model" / kTokenizerWeightsFile) == weights);
  CHECK(file_bytes(dir / "model" / kModelConfigFile) == config);
  CHECK(file_bytes(options.state_path()) == checkpoint);

  // A learning rate whose Adam step does not fit in float32 is refused before any work.
  options.learning_rate = 1e38;
  require_error([&] { train_tokenizer(options); }, ExitCode::usage, {"learning_rate: 1e+38 is out of range"});
  fs::remove_all(dir);
}

TEST_CASE("finiteness checks see NaN and inf in any tensor, and only in floating-point ones", "[training]") {
  CHECK(all_finite({}));
  CHECK(all_finite({torch::ones({3}), torch::arange(4), torch::Tensor()}));
  CHECK_FALSE(all_finite({torch::ones({3}), torch::tensor({1.0, std::nan("")})}));
  CHECK_FALSE(all_finite({torch::tensor({1.0f, INFINITY}, torch::kFloat32)}));
  CHECK_FALSE(all_finite({torch::tensor({-INFINITY}).to(torch::kBFloat16)}));
  torch::nn::Linear layer(2, 3);
  CHECK(all_finite(module_tensors(*layer)));
  {
    torch::NoGradGuard no_grad;
    layer->bias[1] = std::nan("");
  }
  CHECK_FALSE(all_finite(module_tensors(*layer)));
}

TEST_CASE("temporaries of killed writers are removed, those of live ones kept", "[training]") {
  const fs::path dir = testing::fresh_temp_dir("train-stale");
  const fs::path target = dir / "tokenizer.safetensors";
  auto touch = [](const fs::path& path) { std::ofstream(path) << "x"; };
  const fs::path dead = dir / "tokenizer.safetensors.tmp.999999999";  // above any pid_max
  const fs::path ours = dir / ("tokenizer.safetensors.tmp." + std::to_string(::getpid()));
  const fs::path parent = dir / ("tokenizer.safetensors.tmp." + std::to_string(::getppid()));
  const fs::path other = dir / "other.safetensors.tmp.999999999";
  const fs::path named = dir / "tokenizer.safetensors.tmp.backup";
  for (const auto& path : {dead, ours, parent, other, named}) touch(path);
  remove_stale_temporaries({target.string()});
  CHECK_FALSE(fs::exists(dead));
  CHECK(fs::exists(ours));
  CHECK(fs::exists(parent));
  CHECK(fs::exists(other));
  CHECK(fs::exists(named));
  remove_stale_temporaries({(dir / "missing-folder" / "x").string()});  // no folder: nothing to do
  fs::remove_all(dir);
}

TEST_CASE("a resumed run keeps the checkpoint's --limit", "[training]") {
  torch::set_num_threads(1);
  const fs::path dir = testing::fresh_temp_dir("train-limit");
  const fs::path data = make_bar_dataset(dir / "data");
  TokenizerTrainOptions options = tiny_options(data, dir / "model");
  options.data.limit = 40;
  options.steps = 10;
  train_tokenizer(options);
  CHECK(read_safetensors(options.state_path()).metadata.at("limit") == "40");
  options.resume = true;
  options.steps = 12;
  options.data.limit = 20;
  require_error([&] { train_tokenizer(options); }, ExitCode::usage, {"limit: the checkpoint", "first 40 images"});
  CHECK(testing::invalid_argument_of([&] { train_tokenizer(options); }).argument == "limit");
  options.data.limit = -1;  // not given: the checkpoint's
  CHECK(train_tokenizer(options).steps_done == 12);
  CHECK(read_safetensors(options.state_path()).metadata.at("limit") == "40");
  fs::remove_all(dir);
}

TEST_CASE("AdamW is LibTorch's, decays only tensors of two or more dimensions, and its state round-trips", "[training]") {
  torch::manual_seed(3);
  const torch::Tensor weight = torch::randn({3, 4}).requires_grad_(true);
  const torch::Tensor bias = torch::randn({4}).requires_grad_(true);
  AdamWSettings settings;
  settings.weight_decay = 0.1;
  AdamWOptimizer optimizer({{"w", weight}, {"b", bias}}, settings);
  CHECK(optimizer.moments().empty());  // no state before the first update

  // The same update as torch::optim::AdamW with the decay on the matrix only.
  const torch::Tensor weight_copy = weight.detach().clone().requires_grad_(true);
  const torch::Tensor bias_copy = bias.detach().clone().requires_grad_(true);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>{weight_copy},
                      std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(0.05).weight_decay(0.1)));
  groups.emplace_back(std::vector<torch::Tensor>{bias_copy},
                      std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(0.05).weight_decay(0.0)));
  torch::optim::AdamW reference(std::move(groups));
  for (int i = 0; i < 3; ++i) {
    optimizer.zero_grad();
    reference.zero_grad();
    ((weight * weight).sum() + (bias * bias * bias).sum()).backward();
    ((weight_copy * weight_copy).sum() + (bias_copy * bias_copy * bias_copy).sum()).backward();
    optimizer.step(0.05);
    reference.step();
  }
  CHECK(optimizer.steps_taken() == 3);
  CHECK(torch::equal(weight, weight_copy));
  CHECK(torch::equal(bias, bias_copy));
  CHECK(optimizer.moments().size() == 4);

  CheckpointWriter writer;
  optimizer.save(writer);
  CHECK(writer.file.metadata.at("adam.step") == "3");
  const CheckpointReader checkpoint =
      CheckpointReader::from_bytes("state.safetensors", serialize_safetensors(writer.file));
  const torch::Tensor weight_restored = weight.detach().clone().requires_grad_(true);
  const torch::Tensor bias_restored = bias.detach().clone().requires_grad_(true);
  AdamWOptimizer restored({{"w", weight_restored}, {"b", bias_restored}}, settings);
  restored.load(checkpoint);
  CHECK(restored.steps_taken() == 3);
  optimizer.zero_grad();
  restored.zero_grad();
  ((weight * weight).sum() + (bias * bias * bias).sum()).backward();
  ((weight_restored * weight_restored).sum() + (bias_restored * bias_restored * bias_restored).sum()).backward();
  optimizer.step(0.02);
  restored.step(0.02);
  CHECK(torch::equal(weight, weight_restored));  // bit for bit
  CHECK(torch::equal(bias, bias_restored));

  // A state that does not fit is refused, naming the file and the tensor.
  CheckpointWriter wrong;
  optimizer.save(wrong);
  wrong.file.tensors[0] = tensor_to_entry("adam.w.m", torch::zeros({4, 3}));
  AdamWOptimizer victim({{"w", weight_restored}, {"b", bias_restored}}, settings);
  CHECK_THROWS_WITH(victim.load(CheckpointReader::from_bytes("bad.safetensors", serialize_safetensors(wrong.file))),
                    Catch::Contains("bad.safetensors") && Catch::Contains("adam.w.m") && Catch::Contains("shape"));
  wrong.file.tensors.erase(wrong.file.tensors.begin());
  CHECK_THROWS_WITH(victim.load(CheckpointReader::from_bytes("bad.safetensors", serialize_safetensors(wrong.file))),
                    Catch::Contains("missing optimizer tensor \"adam.w.m\""));
}

TEST_CASE("warm-up then cosine learning rate", "[training]") {
  CHECK(warmup_cosine_lr(0, 100, 10, 1.0, 0.1) == Approx(0.1));
  CHECK(warmup_cosine_lr(9, 100, 10, 1.0, 0.1) == Approx(1.0));
  CHECK(warmup_cosine_lr(10, 100, 10, 1.0, 0.1) == Approx(1.0));
  CHECK(warmup_cosine_lr(55, 100, 10, 1.0, 0.1) == Approx(0.55));
  CHECK(warmup_cosine_lr(100, 100, 10, 1.0, 0.1) == Approx(0.1));
}

TEST_CASE("a checkpoint's metadata is validated strictly, once, for every stage", "[training]") {
  torch::set_num_threads(1);
  const fs::path dir = testing::fresh_temp_dir("train-metadata");
  const fs::path data = make_bar_dataset(dir / "data");
  TokenizerTrainOptions options = tiny_options(data, dir / "model");
  options.steps = 4;
  options.checkpoint_every = 4;
  train_tokenizer(options);
  const SafetensorsFile good = read_safetensors(options.state_path());
  CHECK(good.metadata.at("format") == "maskgit-cpp.train-state/2");
  CHECK(good.metadata.at("batch_size") == "16");

  struct Corruption {
    std::string key, value, needle;
  };
  const std::vector<Corruption> table = {
      {"step", "12abc", "\"step\" is \"12abc\""},
      {"step", "-1", "\"step\" is \"-1\""},
      {"step", " 3", "\"step\""},
      {"step", "", "\"step\""},
      {"step", "99999999999999999999", "\"step\""},
      {"batch_size", "0", "\"batch_size\" is \"0\""},
      {"batch_size", "16.0", "\"batch_size\""},
      {"seed", "-3", "\"seed\""},
      {"seed", "18446744073709551616", "\"seed\""},
      {"limit", "-2", "\"limit\""},
      {"limit", "4x", "\"limit\""},
      {"adam.step", "1e3", "\"adam.step\""},
      {"tokenizer_config", "{", "tokenizer_config"},
      {"tokenizer_config", "{}", "tokenizer_config"},
      {"stage", "transformer", "checkpoint of the transformer stage"},
      {"format", "maskgit-cpp.train-state/9", "format"},
  };
  options.resume = true;
  options.steps = 6;
  for (const Corruption& corruption : table) {
    for (const bool remove : {false, true}) {
      if (remove && (corruption.key == "stage" || corruption.key == "format" || corruption.key == "limit")) continue;
      SafetensorsFile bad = good;
      if (remove) bad.metadata.erase(corruption.key);
      else bad.metadata[corruption.key] = corruption.value;
      write_safetensors(options.state_path(), bad);
      const std::string before = file_bytes(options.state_path());
      INFO(corruption.key << (remove ? " removed" : " = " + corruption.value));
      require_error([&] { train_tokenizer(options); }, ExitCode::bad_input,
                    {options.state_path(), remove ? "missing metadata \"" + corruption.key + "\"" : corruption.needle});
      CHECK(file_bytes(options.state_path()) == before);  // a refused checkpoint is never replaced
    }
  }
  // A checkpoint of the trainers before the engine (no "format", "stage" or "ranks") resumes.
  SafetensorsFile earlier = good;
  for (const char* key : {"format", "stage", "ranks", "data"}) earlier.metadata.erase(key);
  write_safetensors(options.state_path(), earlier);
  CHECK(train_tokenizer(options).steps_done == 6);
  fs::remove_all(dir);
}

TEST_CASE("the metrics log is never one of the run's own files or a file that is not a metrics log", "[training]") {
  torch::set_num_threads(1);
  const fs::path dir = testing::fresh_temp_dir("train-metrics-path");
  const fs::path data = make_bar_dataset(dir / "data");
  TokenizerTrainOptions options = tiny_options(data, dir / "model");
  options.steps = 2;
  options.checkpoint_every = 2;
  train_tokenizer(options);
  const std::string checkpoint = file_bytes(options.state_path());
  const std::string weights = file_bytes(dir / "model" / kTokenizerWeightsFile);
  options.resume = true;
  options.steps = 4;
  options.metrics_path = options.state_path();
  require_error([&] { train_tokenizer(options); }, ExitCode::io_error, {"metrics: ", "this run's own files"});
  options.metrics_path = (dir / "model" / kTokenizerWeightsFile).string();
  require_error([&] { train_tokenizer(options); }, ExitCode::io_error, {"this run's own files"});
  const fs::path notes = dir / "notes.txt";
  std::ofstream(notes) << "precious\n";
  options.metrics_path = notes.string();
  require_error([&] { train_tokenizer(options); }, ExitCode::io_error, {"not a metrics log"});
  CHECK(file_bytes(notes) == "precious\n");
  CHECK(file_bytes(options.state_path()) == checkpoint);
  CHECK(file_bytes(dir / "model" / kTokenizerWeightsFile) == weights);
  options.metrics_path = (dir / "elsewhere.jsonl").string();  // a new file is fine
  CHECK(train_tokenizer(options).steps_done == 4);
  fs::remove_all(dir);
}
