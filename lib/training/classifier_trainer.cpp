#include "training/classifier_trainer.h"

#include <fmt/format.h>

#include <filesystem>
#include <optional>

#include "common/error.h"
#include "compat/torch_compat.h"
#include "data/batcher.h"
#include "io/atomic_file.h"
#include "io/tensor_io.h"
#include "training/distributed.h"

namespace maskgit {
namespace fs = std::filesystem;

ClassifierTrainOptions::ClassifierTrainOptions() {
  steps = 0;  // epochs decide
  batch_size = 128;
  learning_rate = 1e-3;
  warmup_steps = 100;
  final_lr_fraction = 0.05;
}

std::string ClassifierTrainOptions::state_path() const { return training_state_path(out_dir, "classifier"); }

std::string ClassifierTrainOptions::resolved_metrics_path() const {
  return metrics_path.empty() ? training_metrics_path(out_dir, "classifier") : metrics_path;
}

int64_t ClassifierTrainOptions::total_steps(int64_t dataset_size, int world_size) const {
  if (steps > 0) return steps;
  return epochs * Batcher(dataset_size, batch_size * world_size, seed).batches_per_epoch();
}

namespace {

constexpr int64_t kAugmentShift = 2;
// Separates the augmentation stream from the dropout stream of the same step.
constexpr uint64_t kAugmentStream = 0xA06E5EEDull;

int64_t parameter_count(const torch::nn::Module& module) {
  int64_t count = 0;
  for (const auto& parameter : module.parameters()) count += parameter.numel();
  return count;
}

// Labels outside the class range would index past the logits; say which file has them.
void check_labels(const LabeledImages& data, int64_t num_classes, const std::string& source) {
  if (data.labels.numel() == 0) return;
  const int64_t lowest = data.labels.min().item<int64_t>();
  const int64_t highest = data.labels.max().item<int64_t>();
  if (lowest < 0 || highest >= num_classes)
    throw_bad_input(fmt::format("{}: labels span {}..{}, expected 0..{}", source, lowest, highest, num_classes - 1));
}

// Random shifts (zero fill, i.e. background) and horizontal flips of `images`, rows
// [offset, offset + images.size(0)) of a global batch of `global_count` images whose draws all
// come from `seed`: a rank's shard gets what its rows would get in one process.
torch::Tensor augment_batch(const torch::Tensor& images, uint64_t seed, int64_t offset, int64_t global_count) {
  auto generator = compat::make_cpu_generator(seed);
  const int64_t count = images.size(0), height = images.size(2), width = images.size(3);
  const torch::Tensor shifts =
      torch::randint(-kAugmentShift, kAugmentShift + 1, {global_count, 2}, generator, torch::kLong).narrow(0, offset, count);
  const torch::Tensor flips = (torch::rand({global_count}, generator) < 0.5).narrow(0, offset, count);
  const torch::Tensor padded =
      torch::constant_pad_nd(images, {kAugmentShift, kAugmentShift, kAugmentShift, kAugmentShift}, 0.0);
  torch::Tensor shifted = torch::empty_like(images);
  const torch::Tensor offsets_table = shifts.contiguous();
  const auto offsets = offsets_table.accessor<int64_t, 2>();
  for (int64_t i = 0; i < count; ++i) {
    const int64_t top = kAugmentShift + offsets[i][0], left = kAugmentShift + offsets[i][1];
    shifted[i].copy_(padded[i].slice(1, top, top + height).slice(2, left, left + width));
  }
  return torch::where(flips.view({count, 1, 1, 1}), shifted.flip({3}), shifted);
}

class ClassifierStage final : public TrainingStage {
 public:
  explicit ClassifierStage(ClassifierTrainOptions& options) : options_(options) {}

  std::string name() const override { return "classifier"; }
  std::string output_dir() const override { return options_.out_dir; }
  std::string weights_path() const override { return (fs::path(options_.out_dir) / kClassifierWeightsFile).string(); }
  std::vector<std::string> written_files() const override {
    return {weights_path(), (fs::path(options_.out_dir) / kClassifierConfigFile).string()};
  }

  // Architecture and augmentation come from the checkpoint so that the resumed run continues
  // the same model and random streams.
  void read_settings(const CheckpointReader& checkpoint) override {
    checkpoint_config_ = checkpoint.parsed(
        "classifier_config", [](const Json& json) { return ClassifierConfig::from_json(json); });
    options_.config = *checkpoint_config_;
    options_.augment = checkpoint.integer("augment", 0, 1) != 0;
  }

  int64_t prepare() override {
    options_.data.channels = static_cast<int>(options_.config.channels);
    data_ = load_dataset(options_.data);
    options_.config.height = data_.images.size(2);
    options_.config.width = data_.images.size(3);
    options_.config.num_classes = static_cast<int64_t>(data_.class_names.size());
    try {
      options_.config.validate();
    } catch (const std::exception& e) {
      throw_bad_input(fmt::format("{}: unsuitable for the classifier: {}", options_.data.path, e.what()));
    }
    const ClassifierConfig& config = options_.config;
    if (checkpoint_config_ && (checkpoint_config_->height != config.height || checkpoint_config_->width != config.width ||
                               checkpoint_config_->num_classes != config.num_classes))
      throw_bad_input(fmt::format("{}: the data has {}×{} images in {} classes, the checkpoint {} was trained on {}×{} in {}",
                                  options_.data.path, config.width, config.height, config.num_classes,
                                  options_.state_path(), checkpoint_config_->width, checkpoint_config_->height,
                                  checkpoint_config_->num_classes));
    check_labels(data_, config.num_classes, options_.data.path);

    // Loaded before training so that a bad path fails now, not after an hour of training.
    if (!options_.evaluation.path.empty()) {
      options_.evaluation.channels = static_cast<int>(config.channels);
      options_.evaluation.width = static_cast<int>(config.width);
      options_.evaluation.height = static_cast<int>(config.height);
      evaluation_ = load_dataset(options_.evaluation);
      if (evaluation_.class_names != data_.class_names)
        throw_bad_input(fmt::format("{}: its classes differ from those of the training data {}",
                                    options_.evaluation.path, options_.data.path));
      check_labels(evaluation_, config.num_classes, options_.evaluation.path);
    }

    torch::manual_seed(options_.seed);  // parameter initialisation, the same on every rank
    classifier_ = Classifier(config);
    classifier_->to(options_.device);
    classifier_->train();
    return data_.images.size(0);
  }

  int64_t total_steps(int64_t dataset_size) const override {
    total_steps_ = options_.total_steps(dataset_size, options_.group->world_size());
    batches_per_epoch_ = Batcher(dataset_size, options_.batch_size * options_.group->world_size(), options_.seed)
                             .batches_per_epoch();
    return total_steps_;
  }
  torch::nn::Module& module() override { return *classifier_; }

  void load_state(const CheckpointReader& checkpoint) override {
    load_module_state(*classifier_, checkpoint.file(), checkpoint.path(), "model.");
  }

  std::string describe(int64_t dataset_size) const override {
    const ClassifierConfig& config = options_.config;
    return fmt::format("classifier: {} parameters, {}×{}×{} images in {} classes, {} training images, {} steps ({:.1f} epochs)",
                       parameter_count(*classifier_), config.channels, config.height, config.width, config.num_classes,
                       dataset_size, total_steps_,
                       static_cast<double>(total_steps_) / static_cast<double>(batches_per_epoch_));
  }

  StepOutput forward(const StepBatch& batch) override {
    const torch::Tensor index = torch::tensor(batch.shard_indices(), torch::kLong);
    torch::Tensor images = data_.images.index_select(0, index);
    if (options_.augment)
      images = augment_batch(images, mix_seed(options_.seed ^ kAugmentStream, static_cast<uint64_t>(batch.step)),
                             batch.shard_begin, static_cast<int64_t>(batch.global_indices.size()));
    const torch::Tensor labels = data_.labels.index_select(0, index).to(options_.device);
    // Dropout draws from the global generator; seeding it per step (and rank) makes a resumed
    // run draw what an uninterrupted one would.
    const uint64_t dropout_seed = mix_seed(options_.seed, static_cast<uint64_t>(batch.step));
    torch::manual_seed(batch.rank == 0 ? dropout_seed : mix_seed(dropout_seed, static_cast<uint64_t>(batch.rank)));
    const torch::Tensor logits = classifier_->forward(images.to(options_.device));
    StepOutput step;
    step.loss = torch::nn::functional::cross_entropy(logits, labels);
    step.weight = static_cast<double>(batch.shard_size);
    step.metrics = {logits.detach().argmax(1).eq(labels).to(torch::kFloat64).mean()};
    return step;
  }

  std::string step_note(const WindowSummary& window) const override {
    return fmt::format(" (epoch {}/{})", (window.steps_done - 1) / batches_per_epoch_ + 1,
                       (window.total_steps + batches_per_epoch_ - 1) / batches_per_epoch_);
  }

  std::string progress(const WindowSummary& window) const override {
    return fmt::format("loss {:.4f} | accuracy {:.1f}%", window.mean_loss, 100.0 * window.mean_metrics.at(0));
  }

  void record(const WindowSummary& window, Json& record) const override {
    record["epoch"] = static_cast<double>(window.steps_done) / static_cast<double>(batches_per_epoch_);
    record["loss"] = window.mean_loss;
    record["accuracy"] = window.mean_metrics.at(0);
  }

  void write_checkpoint(CheckpointWriter& checkpoint) const override {
    checkpoint.set("augment", options_.augment ? "1" : "0");
    checkpoint.set("classifier_config", dump_json(options_.config.to_json()));
  }

  void write_model() const override { save_classifier(options_.out_dir, classifier_, data_.class_names); }

  std::optional<Json> after_run(const TrainingRunResult& result) override {
    if (!evaluation_.images.defined()) return std::nullopt;
    evaluation_accuracy_ =
        evaluate_classifier_accuracy(classifier_, evaluation_.images, evaluation_.labels, 256, options_.device);
    Json record = Json::object();
    record["step"] = result.steps_done;
    record["evaluation_accuracy"] = evaluation_accuracy_;
    record["evaluation_images"] = evaluation_.images.size(0);
    record["evaluation_data"] = fmt::format("{} ({})", options_.evaluation.path, options_.evaluation.split);
    return record;
  }

  std::string more_steps_hint() const override { return "raise --epochs or --steps to continue"; }

  std::vector<std::string> settings() const override {
    return {"classifier_config=" + dump_json(options_.config.to_json()),
            fmt::format("augment={} epochs={}", options_.augment, options_.epochs),
            fmt::format("evaluation={} split={}", options_.evaluation.path, options_.evaluation.split)};
  }

  double evaluation_accuracy() const { return evaluation_accuracy_; }
  int64_t evaluation_images() const { return evaluation_.images.defined() ? evaluation_.images.size(0) : 0; }

 private:
  ClassifierTrainOptions& options_;
  std::optional<ClassifierConfig> checkpoint_config_;
  LabeledImages data_, evaluation_;
  mutable Classifier classifier_{nullptr};  // saving takes the module holder by reference
  mutable int64_t total_steps_ = 0, batches_per_epoch_ = 1;
  double evaluation_accuracy_ = -1;
};

}  // namespace

double evaluate_classifier_accuracy(Classifier& classifier, const torch::Tensor& images, const torch::Tensor& labels,
                                    int64_t batch_size, const torch::Device& device) {
  if (labels.dim() != 1 || labels.size(0) != images.size(0))
    throw std::invalid_argument("evaluate_classifier_accuracy: need one label per image");
  if (images.size(0) == 0) return 0.0;
  const ClassifierOutputs outputs = classify_in_batches(classifier, images, batch_size, device);
  const torch::Tensor predicted = outputs.logits.argmax(1);
  return predicted.eq(labels.to(torch::kCPU, torch::kLong)).to(torch::kFloat64).mean().item<double>();
}

ClassifierTrainResult train_classifier(const ClassifierTrainOptions& requested) {
  ClassifierTrainOptions options = requested;
  if (options.steps <= 0 && options.epochs < 1)
    throw InvalidArgument("epochs", "must be positive (or give a number of steps)");
  ClassifierStage stage(options);
  const TrainingRunResult run = run_training(stage, options);
  ClassifierTrainResult result;
  static_cast<TrainingRunResult&>(result) = run;
  result.last_accuracy = run.last_metrics.empty() ? 0.0 : run.last_metrics[0];
  result.evaluation_accuracy = stage.evaluation_accuracy();
  result.evaluation_images = result.evaluation_accuracy >= 0 ? stage.evaluation_images() : 0;
  return result;
}

}  // namespace maskgit
