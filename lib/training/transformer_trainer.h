#pragma once
// Stage 2 training: masked visual token modeling (docs/model.md §3.6) on the token grids of a
// trained tokenizer. The dataset is tokenized once and the ids cached beside the checkpoint.
#include <torch/torch.h>

#include <string>

#include "data/dataset.h"
#include "transformer/config.h"

namespace maskgit {

struct TransformerTrainOptions {
  DatasetSpec data;
  std::string model_dir;  // must hold a trained tokenizer; receives transformer.safetensors
  TransformerConfig config;  // codebook_size, num_classes and grid come from the model
  int64_t steps = 10000;
  int64_t batch_size = 256;
  double learning_rate = 1e-3;
  int64_t warmup_steps = 500;
  double final_lr_fraction = 0.1;
  double beta1 = 0.9, beta2 = 0.96;
  double weight_decay = 4.5e-2;
  double label_smoothing = 0.1;
  double class_dropout = 0.1;  // probability of replacing the class by the "no class" token
  double ema_decay = 0.0;      // 0 = off; otherwise the shipped weights are the EMA
  int64_t checkpoint_every = 500;
  int64_t log_every = 50;
  uint64_t seed = 1;
  bool resume = false;
  // A fresh run (no `resume`) refuses a directory that holds a transformer checkpoint or
  // transformer weights unless `overwrite` (the tokenizer beside them is what it trains on).
  bool overwrite = false;
  int64_t stop_after = -1;
  bool quiet = false;
  std::string metrics_path;  // default: <model_dir>/train-state/transformer-metrics.jsonl
  torch::Device device = torch::kCPU;

  std::string state_path() const;        // <model_dir>/train-state/transformer.safetensors
  std::string token_cache_path() const;  // <model_dir>/train-state/tokens-<split>.safetensors
  std::string resolved_metrics_path() const;
};

struct TransformerTrainResult {
  int64_t steps_done = 0;
  bool interrupted = false;
  double first_loss = 0, last_loss = 0;
  double last_masked_accuracy = 0;
  double seconds = 0;
};

TransformerTrainResult train_transformer(const TransformerTrainOptions& options);

// Masks for MVTM: for each row, n = ceil(γ_cosine(r)·N) positions with r ~ U[0,1), chosen
// uniformly (at least one). Returns [B, N] bool.
torch::Tensor sample_training_mask(int64_t batch, int64_t tokens, at::Generator& generator);

}  // namespace maskgit
