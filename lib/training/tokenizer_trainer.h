#pragma once
// Stage 1 training: the VQ tokenizer on an image dataset, with a plain reconstruction loss
// plus the codebook and commitment terms of docs/model.md §2.7, as a stage of the training
// engine (engine.h). Codebook collapse is guarded against twice: the codebook starts from
// encoder outputs of the first global batch, and codes unused over a window of steps (counted
// over every rank) are restarted on encoder outputs of the current global batch.
#include <torch/torch.h>

#include <string>

#include "tokenizer/config.h"
#include "training/engine.h"

namespace maskgit {

struct TokenizerTrainOptions : TrainingRunOptions {
  TokenizerTrainOptions();
  std::string model_dir;  // receives config.json + tokenizer.safetensors at every checkpoint
  TokenizerConfig config;
  double codebook_weight = 1.0;
  double commitment_weight = 0.25;
  int64_t dead_code_window = 100;  // 0 disables restarts

  std::string state_path() const;  // <model_dir>/train-state/tokenizer.safetensors
  std::string resolved_metrics_path() const;
};

struct TokenizerTrainResult {
  int64_t steps_done = 0;
  bool interrupted = false;
  double first_loss = 0;  // mean over the first logging window of this run
  double last_loss = 0;   // mean over the last logging window of this run
  double last_psnr = 0;
  int64_t codes_used = 0;  // over the last dead-code window
  double seconds = 0;
};

// Throws what run_training throws.
TokenizerTrainResult train_tokenizer(const TokenizerTrainOptions& options);

}  // namespace maskgit
