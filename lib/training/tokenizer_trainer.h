#pragma once
// Stage 1 training: the VQ tokenizer on an image dataset, with a plain reconstruction loss
// plus the codebook and commitment terms of docs/model.md §2.7. Codebook collapse is guarded
// against twice: the codebook starts from encoder outputs, and codes unused over a window of
// steps are restarted on encoder outputs of the current batch.
#include <torch/torch.h>

#include <string>

#include "data/dataset.h"
#include "tokenizer/config.h"

namespace maskgit {

struct TokenizerTrainOptions {
  DatasetSpec data;
  std::string model_dir;  // receives config.json + tokenizer.safetensors at every checkpoint
  TokenizerConfig config;
  int64_t steps = 6000;   // total optimisation steps (a resumed run continues up to this)
  int64_t batch_size = 128;
  double learning_rate = 1e-3;
  int64_t warmup_steps = 200;
  double final_lr_fraction = 0.05;
  double codebook_weight = 1.0;
  double commitment_weight = 0.25;
  int64_t dead_code_window = 100;  // 0 disables restarts
  int64_t checkpoint_every = 500;
  int64_t log_every = 50;
  uint64_t seed = 1;
  bool resume = false;
  // A fresh run (no `resume`) refuses a directory that holds a tokenizer checkpoint or
  // tokenizer weights unless `overwrite`; then it discards that checkpoint and starts over.
  bool overwrite = false;
  int64_t stop_after = -1;  // stop (with a checkpoint) after this many steps of this run
  bool quiet = false;  // no progress lines on stderr
  std::string metrics_path;  // default: <model_dir>/train-state/tokenizer-metrics.jsonl
  torch::Device device = torch::kCPU;

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

TokenizerTrainResult train_tokenizer(const TokenizerTrainOptions& options);

}  // namespace maskgit
