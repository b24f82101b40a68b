#pragma once
// Training of the evaluation classifier (lib/eval/classifier.h) with cross-entropy, as a stage
// of the training engine (engine.h): deterministic data order, AdamW with checkpointed state,
// atomic checkpoints in OUT/train-state/, --resume, interrupt → checkpoint, JSON-lines metrics,
// progress lines on stderr, data-parallel ranks.
#include <torch/torch.h>

#include <string>

#include "eval/classifier.h"
#include "training/engine.h"

namespace maskgit {

struct ClassifierTrainOptions : TrainingRunOptions {
  ClassifierTrainOptions();
  std::string out_dir;     // receives config.json + classifier.safetensors at every checkpoint
  // width_multiplier, feature_dim and dropout are used as given; channels too (the data is
  // converted to it); height, width and num_classes are taken from the data.
  ClassifierConfig config;
  int64_t epochs = 5;      // used when `steps` is 0 (the default here)
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

  std::string state_path() const;  // <out_dir>/train-state/classifier.safetensors
  std::string resolved_metrics_path() const;
  // `steps` when positive, else epochs × whole global batches per epoch (batch_size × ranks).
  int64_t total_steps(int64_t dataset_size, int world_size = 1) const;
};

// seconds: the training time of this run, without the final evaluation.
struct ClassifierTrainResult : TrainingRunResult {
  double last_accuracy = 0;   // training-batch accuracy over the last logging window
  double evaluation_accuracy = -1;  // on options.evaluation; -1 when not measured
  int64_t evaluation_images = 0;
};

// Throws what run_training throws, and InvalidArgument("epochs") for no steps and no epochs.
ClassifierTrainResult train_classifier(const ClassifierTrainOptions& options);

// Fraction of `images` whose predicted class equals `labels` (int64 [N]).
double evaluate_classifier_accuracy(Classifier& classifier, const torch::Tensor& images, const torch::Tensor& labels,
                                    int64_t batch_size, const torch::Device& device);

}  // namespace maskgit
