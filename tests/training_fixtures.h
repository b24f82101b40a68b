#pragma once
// Fixtures of the training tests (include before <catch2/catch.hpp>): a tiny image-folder
// dataset a tiny tokenizer learns in a few dozen steps, and the options of such a run.
#include <torch/torch.h>

#include <filesystem>
#include <string>

#include "io/image.h"
#include "tiny_models.h"
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

}  // namespace maskgit::testing
