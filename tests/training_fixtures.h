#pragma once
// Fixtures of the training tests (include before <catch2/catch.hpp>): a tiny image-folder
// dataset a tiny tokenizer learns in a few dozen steps, and the options of such a run.
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "io/image.h"
#include "io/safetensors.h"
#include "io/tensor_io.h"
#include "model/model_dir.h"
#include "tiny_models.h"
#include "training/engine.h"
#include "training/tokenizer_trainer.h"

namespace maskgit::testing {

// An image folder of 8×8 grey pictures in two classes ("horizontal", "vertical"): bars two
// pixels wide at random positions (drawn from `seed`), 32 per class.
inline std::filesystem::path make_bar_dataset(const std::filesystem::path& root, uint64_t seed = 7) {
  torch::manual_seed(seed);
  for (int cls = 0; cls < 2; ++cls) {
    const std::filesystem::path folder = root / (cls == 0 ? "horizontal" : "vertical");
    std::filesystem::create_directories(folder);
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

// A quiet tokenizer run of tiny_tokenizer_config() on `data` into `out`: batch 16, a short
// warm-up, logs, checkpoints and codebook restarts every 10 steps.
inline TokenizerTrainOptions tiny_tokenizer_training(const std::filesystem::path& data,
                                                     const std::filesystem::path& out) {
  TokenizerTrainOptions options;
  options.data.path = data.string();
  options.model_dir = out.string();
  options.config = tiny_tokenizer_config();
  options.batch_size = 16;
  options.learning_rate = 3e-3;
  options.warmup_steps = 5;
  options.log_every = 10;
  options.checkpoint_every = 10;
  options.dead_code_window = 10;
  options.quiet = true;
  return options;
}

// The tensors of two safetensors files that differ, bit for bit, by name (a name on one side
// only, or at another position, counts too); empty when the files hold the same tensors.
inline std::vector<std::string> differing_tensors(const std::filesystem::path& a_path,
                                                  const std::filesystem::path& b_path) {
  const SafetensorsFile a = read_safetensors(a_path.string()), b = read_safetensors(b_path.string());
  std::vector<std::string> differing;
  for (size_t i = 0; i < std::max(a.tensors.size(), b.tensors.size()); ++i) {
    if (i >= a.tensors.size() || i >= b.tensors.size() || a.tensors[i].name != b.tensors[i].name) {
      differing.push_back(i < a.tensors.size() ? a.tensors[i].name : b.tensors[i].name);
    } else if (!torch::equal(entry_to_tensor(a.tensors[i]), entry_to_tensor(b.tensors[i]))) {
      differing.push_back(a.tensors[i].name);
    }
  }
  return differing;
}

// A tokenizer run killed and resumed must end exactly where an uninterrupted one does. Trains
// `options_for(DIR/straight)` through; trains `options_for(DIR/split)` stopped after
// `stop_after` steps (as if killed right after that checkpoint), then `resume_for(DIR/split)`
// (the options a resuming user passes, with resume set). Returns the tensors that differ
// between the two runs' weights and training checkpoints (empty: bit for bit); throws
// std::runtime_error when a run does not stop where it should.
inline std::vector<std::string> resume_differences(
    const std::function<TokenizerTrainOptions(const std::filesystem::path&)>& options_for,
    const std::function<TokenizerTrainOptions(const std::filesystem::path&)>& resume_for,
    const std::filesystem::path& dir, int64_t stop_after) {
  const TokenizerTrainOptions straight = options_for(dir / "straight");
  const int64_t steps = train_tokenizer(straight).steps_done;
  TokenizerTrainOptions split = options_for(dir / "split");
  split.stop_after = stop_after;
  if (train_tokenizer(split).steps_done != stop_after) throw std::runtime_error("the split run did not stop");
  if (train_tokenizer(resume_for(dir / "split")).steps_done != steps)
    throw std::runtime_error("the resumed run did not end at the straight run's step");
  std::vector<std::string> differing =
      differing_tensors(dir / "straight" / kTokenizerWeightsFile, dir / "split" / kTokenizerWeightsFile);
  for (const std::string& name : differing_tensors(training_state_path((dir / "straight").string(), "tokenizer"),
                                                   training_state_path((dir / "split").string(), "tokenizer")))
    differing.push_back("train-state: " + name);
  return differing;
}

}  // namespace maskgit::testing
