#pragma once
// Stage 2 training: masked visual token modeling (docs/model.md §3.6) on the token grids of a
// trained tokenizer, as a stage of the training engine (engine.h). The dataset is tokenized
// once (by rank 0) and the ids cached beside the checkpoint.
#include <torch/torch.h>

#include <string>

#include "transformer/config.h"
#include "training/engine.h"

namespace maskgit {

struct TransformerTrainOptions : TrainingRunOptions {
  TransformerTrainOptions();
  std::string model_dir;     // must hold a trained tokenizer; receives transformer.safetensors
  TransformerConfig config;  // codebook_size, num_classes and grid come from the model
  // The loss settings and the EMA decay, recorded in the checkpoint ("transformer_training"):
  // a resumed run takes them from it. A checkpoint of an earlier version does not record them;
  // resuming one that holds averaged weights with ema_decay 0 is InvalidArgument "ema".
  double label_smoothing = 0.1;
  double class_dropout = 0.1;  // probability of replacing the class by the "no class" token
  double ema_decay = 0.0;      // 0 = off; otherwise the shipped weights are the EMA
  // A model directory whose transformer is the starting point of a new run (its configuration
  // replaces `config`'s, dropout included unless `dropout_from_options`; ignored on resume). Its
  // codebook, grid and class names must be model_dir's (InvalidArgument "init_from" otherwise),
  // and with class_dropout above 0 it must have the no-class token (InvalidArgument
  // "class_dropout"). A note says when model_dir's tokenizer encodes differently (another
  // encoder or codebook: the starting transformer learned other codes).
  std::string init_from;
  bool dropout_from_options = false;

  std::string state_path() const;        // <model_dir>/train-state/transformer.safetensors
  std::string token_cache_path() const;  // <model_dir>/train-state/tokens-<split>.safetensors
  std::string resolved_metrics_path() const;
};

struct TransformerTrainResult : TrainingRunResult {
  double last_masked_accuracy = 0;  // over the last logging window
};

// Throws what run_training throws.
TransformerTrainResult train_transformer(const TransformerTrainOptions& options);

// Masks for MVTM: for each row, n = ceil(γ_cosine(r)·N) positions with r ~ U[0,1), chosen
// uniformly (at least one). Returns [B, N] bool.
torch::Tensor sample_training_mask(int64_t batch, int64_t tokens, at::Generator& generator);

}  // namespace maskgit
