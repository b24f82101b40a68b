#pragma once
// Training of the evaluation classifier (lib/eval/classifier.h) with cross-entropy, following
// the tokenizer trainer's conventions: deterministic data order, Adam with checkpointed state,
// atomic checkpoints in OUT/train-state/, --resume, interrupt → checkpoint, JSON-lines metrics
// and progress lines on stderr.
#include <torch/torch.h>

#include <string>

#include "data/dataset.h"
#include "eval/classifier.h"

namespace maskgit {

struct ClassifierTrainOptions {
  DatasetSpec data;        // training images; channels is taken from config.channels
  std::string out_dir;     // receives config.json + classifier.safetensors at every checkpoint
  // width_multiplier, feature_dim and dropout are used as given; channels too (the data is
  // converted to it); height, width and num_classes are taken from the data.
  ClassifierConfig config;
  int64_t epochs = 5;
  int64_t steps = 0;       // > 0: total steps, overriding epochs; a resumed run continues up to it
  int64_t batch_size = 128;
  double learning_rate = 1e-3;
  int64_t warmup_steps = 100;
  double final_lr_fraction = 0.05;
  double weight_decay = 0.0;  // AdamW-style, decoupled
  // Random shifts of up to 2 pixels and horizontal flips, drawn per step from the seed.
  // Off by default: the classifier should judge images as they are.
  bool augment = false;
  // Measured after the last step when `evaluation.path` is set (e.g. the t10k split), and
  // then recorded in the metrics log and the result.
  DatasetSpec evaluation = [] {
    DatasetSpec spec;
    spec.split = "t10k";
    return spec;
  }();
  int64_t checkpoint_every = 500;
  int64_t log_every = 50;
  uint64_t seed = 1;
  bool resume = false;
  // A fresh run (no `resume`) refuses a directory that holds a classifier checkpoint or
  // classifier weights unless `overwrite`; then it discards that checkpoint and starts over.
  bool overwrite = false;
  int64_t stop_after = -1;  // stop (with a checkpoint) after this many steps of this run
  bool quiet = false;       // no progress lines on stderr
  std::string metrics_path; // default: <out_dir>/train-state/classifier-metrics.jsonl
  torch::Device device = torch::kCPU;

  std::string state_path() const;  // <out_dir>/train-state/classifier.safetensors
  std::string resolved_metrics_path() const;
  // `steps` when positive, else epochs × whole batches per epoch.
  int64_t total_steps(int64_t dataset_size) const;
};

struct ClassifierTrainResult {
  int64_t steps_done = 0;
  int64_t total_steps = 0;
  bool interrupted = false;
  double first_loss = 0;      // mean over the first logging window of this run
  double last_loss = 0;       // mean over the last logging window of this run
  double last_accuracy = 0;   // training-batch accuracy over the last logging window
  double evaluation_accuracy = -1;  // on options.evaluation; -1 when not measured
  int64_t evaluation_images = 0;
  double seconds = 0;         // training time of this run, without the final evaluation
};

ClassifierTrainResult train_classifier(const ClassifierTrainOptions& options);

// Fraction of `images` whose predicted class equals `labels` (int64 [N]).
double evaluate_classifier_accuracy(Classifier& classifier, const torch::Tensor& images, const torch::Tensor& labels,
                                    int64_t batch_size, const torch::Device& device);

}  // namespace maskgit
