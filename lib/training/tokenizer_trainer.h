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

struct TokenizerTrainResult : TrainingRunResult {
  double last_psnr = 0;    // of the reconstructions over the last logging window
  int64_t codes_used = 0;  // over the last dead-code window
};

// Throws what run_training throws.
TokenizerTrainResult train_tokenizer(const TokenizerTrainOptions& options);

}  // namespace maskgit
