#include "training/classifier_trainer.h"
#include "common/console.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <optional>

#include "common/error.h"
#include "compat/torch_compat.h"
#include "data/batcher.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "io/tensor_io.h"
#include "training/adam.h"
#include "training/interrupt.h"
#include "training/metrics_log.h"
#include "training/progress.h"
#include "training/run_guard.h"
#include "runtime/threads.h"

namespace maskgit {
namespace fs = std::filesystem;

std::string ClassifierTrainOptions::state_path() const {
  return (fs::path(out_dir) / "train-state" / "classifier.safetensors").string();
}

std::string ClassifierTrainOptions::resolved_metrics_path() const {
  if (!metrics_path.empty()) return metrics_path;
  return (fs::path(out_dir) / "train-state" / "classifier-metrics.jsonl").string();
}

int64_t ClassifierTrainOptions::total_steps(int64_t dataset_size) const {
  if (steps > 0) return steps;
  return epochs * Batcher(dataset_size, batch_size, seed).batches_per_epoch();
}

namespace {

constexpr int64_t kAugmentShift = 2;
// Separates the augmentation stream from the dropout stream of the same step.
constexpr uint64_t kAugmentStream = 0xA06E5EEDull;

const std::string& required_metadata(const SafetensorsFile& file, const std::string& key, const std::string& source) {
  auto it = file.metadata.find(key);
  if (it == file.metadata.end()) throw_bad_input(fmt::format("{}: missing metadata \"{}\"", source, key));
  return it->second;
}

int64_t metadata_integer(const SafetensorsFile& file, const std::string& key, const std::string& source) {
  const std::string& text = required_metadata(file, key, source);
  try {
    size_t used = 0;
    const int64_t value = std::stoll(text, &used);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  throw_bad_input(fmt::format("{}: metadata \"{}\" is not an integer", source, key));
}

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

// Random shifts (zero fill, i.e. background) and horizontal flips, all drawn from `seed`.
torch::Tensor augment_batch(const torch::Tensor& images, uint64_t seed) {
  auto generator = compat::make_cpu_generator(seed);
  const int64_t count = images.size(0), height = images.size(2), width = images.size(3);
  const torch::Tensor shifts = torch::randint(-kAugmentShift, kAugmentShift + 1, {count, 2}, generator, torch::kLong);
  const torch::Tensor flips = torch::rand({count}, generator) < 0.5;
  const torch::Tensor padded =
      torch::constant_pad_nd(images, {kAugmentShift, kAugmentShift, kAugmentShift, kAugmentShift}, 0.0);
  torch::Tensor shifted = torch::empty_like(images);
  const auto offsets = shifts.accessor<int64_t, 2>();
  for (int64_t i = 0; i < count; ++i) {
    const int64_t top = kAugmentShift + offsets[i][0], left = kAugmentShift + offsets[i][1];
    shifted[i].copy_(padded[i].slice(1, top, top + height).slice(2, left, left + width));
  }
  return torch::where(flips.view({count, 1, 1, 1}), shifted.flip({3}), shifted);
}

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
  if (options.batch_size < 1) throw InvalidArgument("batch_size", "must be positive");
  if (options.steps <= 0 && options.epochs < 1)
    throw InvalidArgument("epochs", "must be positive (or give a number of steps)");
  if (options.log_every < 1) throw InvalidArgument("log_every", "must be positive");
  if (options.checkpoint_every < 1) throw InvalidArgument("checkpoint_every", "must be positive");
  const std::string state_path = options.state_path();
  const std::string weights_path = (fs::path(options.out_dir) / kClassifierWeightsFile).string();
  check_learning_rate(options.learning_rate, AdamOptions{}.beta1, options.weight_decay);
  refuse_to_replace_run("classifier", options.out_dir, state_path, weights_path, options.resume, options.overwrite);
  remove_stale_temporaries({state_path, options.resolved_metrics_path(), weights_path,
                            (fs::path(options.out_dir) / kClassifierConfigFile).string()});
  SafetensorsFile resume_state;
  int64_t start_step = 0;
  std::optional<ClassifierConfig> checkpoint_config;
  if (options.resume) {
    if (!file_exists(state_path))
      throw InvalidArgument("resume", fmt::format("no checkpoint at {}", state_path), ExitCode::bad_input);
    try {
      resume_state = read_safetensors(state_path);
    } catch (const SafetensorsError& e) {
      throw_bad_input(e.what());
    }
    // Architecture, seed, batch size and augmentation come from the checkpoint so that the
    // resumed run continues the same data order, model and random streams.
    try {
      checkpoint_config =
          ClassifierConfig::from_json(parse_json(required_metadata(resume_state, "classifier_config", state_path)));
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw_bad_input(fmt::format("{}: bad classifier_config: {}", state_path, e.what()));
    }
    options.config = *checkpoint_config;
    start_step = metadata_integer(resume_state, "step", state_path);
    options.seed = metadata_seed(resume_state, state_path);
    options.batch_size = metadata_integer(resume_state, "batch_size", state_path);
    options.augment = metadata_integer(resume_state, "augment", state_path) != 0;
    if (start_step < 0 || options.batch_size < 1)
      throw_bad_input(fmt::format("{}: metadata \"step\" or \"batch_size\" out of range", state_path));
    resume_data_limit(options.data, resume_state, state_path);
  }

  options.data.channels = static_cast<int>(options.config.channels);
  LabeledImages data = load_dataset(options.data);
  const int64_t dataset_size = data.images.size(0);
  if (dataset_size < options.batch_size)
    throw InvalidArgument("batch_size",
                          fmt::format("{} is larger than the dataset ({} images)", options.batch_size, dataset_size));
  options.config.height = data.images.size(2);
  options.config.width = data.images.size(3);
  options.config.num_classes = static_cast<int64_t>(data.class_names.size());
  try {
    options.config.validate();
  } catch (const std::exception& e) {
    throw_bad_input(fmt::format("{}: unsuitable for the classifier: {}", options.data.path, e.what()));
  }
  if (checkpoint_config && (checkpoint_config->height != options.config.height ||
                            checkpoint_config->width != options.config.width ||
                            checkpoint_config->num_classes != options.config.num_classes))
    throw_bad_input(fmt::format("{}: the data has {}×{} images in {} classes, the checkpoint {} was trained on {}×{} in {}",
                                options.data.path, options.config.width, options.config.height,
                                options.config.num_classes, state_path, checkpoint_config->width,
                                checkpoint_config->height, checkpoint_config->num_classes));
  check_labels(data, options.config.num_classes, options.data.path);

  // Loaded before training so that a bad path fails now, not after an hour of training.
  LabeledImages evaluation;
  if (!options.evaluation.path.empty()) {
    options.evaluation.channels = static_cast<int>(options.config.channels);
    options.evaluation.width = static_cast<int>(options.config.width);
    options.evaluation.height = static_cast<int>(options.config.height);
    evaluation = load_dataset(options.evaluation);
    if (evaluation.class_names != data.class_names)
      throw_bad_input(fmt::format("{}: its classes differ from those of the training data {}", options.evaluation.path,
                                  options.data.path));
    check_labels(evaluation, options.config.num_classes, options.evaluation.path);
  }

  const int64_t total_steps = options.total_steps(dataset_size);
  torch::manual_seed(options.seed);  // parameter initialisation
  Classifier classifier(options.config);
  classifier->to(options.device);
  classifier->train();
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (const auto& item : classifier->named_parameters()) named.emplace_back(item.key(), item.value());
  AdamOptions adam_options;
  adam_options.weight_decay = options.weight_decay;
  Adam adam(named, adam_options);

  if (options.resume) {
    load_module_state(*classifier, resume_state, state_path, "model.");
    adam.load_state(resume_state, state_path);
    if (!options.quiet)
      print_stderr("resuming from step {} of {} (architecture, seed, batch size and augmentation from the checkpoint)\n",
                 start_step, state_path);
  }

  Batcher batcher(dataset_size, options.batch_size, options.seed);
  const int64_t batches_per_epoch = batcher.batches_per_epoch();
  auto batch_at = [&](int64_t step) {
    const auto indices = batcher.batch_indices(step / batches_per_epoch, step % batches_per_epoch);
    const torch::Tensor index = torch::tensor(indices, torch::kLong);
    torch::Tensor images = data.images.index_select(0, index);
    if (options.augment) images = augment_batch(images, mix_seed(options.seed ^ kAugmentStream, static_cast<uint64_t>(step)));
    return std::make_pair(images.to(options.device), data.labels.index_select(0, index).to(options.device));
  };

  ensure_directory(fs::path(state_path).parent_path().string());
  if (!options.resume) discard_earlier_checkpoint(state_path);
  MetricsLog metrics(options.resolved_metrics_path(), options.resume ? start_step : -1);

  int64_t last_checkpoint = options.resume ? start_step : -1;
  auto save_checkpoint = [&](int64_t steps_done) {
    // Never write a model that is not finite (the loss is checked every step; this also
    // covers weights and optimizer moments that overflowed in the last update).
    std::vector<torch::Tensor> tensors = module_tensors(*classifier);
    for (const torch::Tensor& moment : adam.moments()) tensors.push_back(moment);
    if (!all_finite(tensors))
      throw_diverged("classifier", steps_done, "the weights are not finite after the update", last_checkpoint,
                     state_path, options.learning_rate);
    SafetensorsFile state;
    append_module_state(state, *classifier, "model.");
    adam.save_state(state);
    state.metadata["step"] = std::to_string(steps_done);
    state.metadata["seed"] = std::to_string(options.seed);
    state.metadata["batch_size"] = std::to_string(options.batch_size);
    state.metadata["augment"] = options.augment ? "1" : "0";
    state.metadata["classifier_config"] = dump_json(options.config.to_json());
    state.metadata["data"] = options.data.path;
    state.metadata["limit"] = std::to_string(options.data.limit);
    write_safetensors(state_path, state);
    save_classifier(options.out_dir, classifier, data.class_names);
    last_checkpoint = steps_done;
  };

  ClassifierTrainResult result;
  result.steps_done = start_step;
  result.total_steps = total_steps;
  if (!options.quiet)
    print_stderr("classifier: {} parameters, {}×{}×{} images in {} classes, {} training images, {} steps ({:.1f} epochs)\n",
               parameter_count(*classifier),
               options.config.channels, options.config.height, options.config.width, options.config.num_classes,
               dataset_size, total_steps, static_cast<double>(total_steps) / static_cast<double>(batches_per_epoch));

  const int64_t total_epochs = (total_steps + batches_per_epoch - 1) / batches_per_epoch;
  const auto started = std::chrono::steady_clock::now();
  auto window_started = started;
  double window_loss = 0;
  int64_t window_correct = 0, window_images = 0, window_steps = 0;
  bool first_window = true, stopped_early = false;
  for (int64_t step = start_step; step < total_steps; ++step) {
    adapt_cpu_threads();
    if (interrupt_requested()) {
      save_checkpoint(step);
      result.interrupted = true;
      if (!options.quiet) print_stderr("interrupted: checkpoint saved at step {} ({})\n", step, state_path);
      break;
    }
    const auto [images, labels] = batch_at(step);
    // Dropout draws from the global generator; seeding it per step makes a resumed run
    // draw what an uninterrupted one would.
    torch::manual_seed(mix_seed(options.seed, static_cast<uint64_t>(step)));
    const torch::Tensor logits = classifier->forward(images);
    const torch::Tensor loss = torch::nn::functional::cross_entropy(logits, labels);
    adam.zero_grad();
    loss.backward();
    const double learning_rate =
        warmup_cosine_lr(step, total_steps, options.warmup_steps, options.learning_rate, options.final_lr_fraction);
    adam.step(learning_rate);

    // Read after the update was queued, as before; a step whose loss is not finite is never
    // saved (its update is garbage, and the run stops).
    const double loss_value = loss.item<double>();
    if (!std::isfinite(loss_value))
      throw_diverged("classifier", step + 1, describe_non_finite_loss(loss_value), last_checkpoint, state_path,
                     options.learning_rate);
    window_loss += loss_value;
    window_correct += logits.detach().argmax(1).eq(labels).sum().item<int64_t>();
    window_images += labels.size(0);
    ++window_steps;
    const int64_t steps_done = step + 1;
    result.steps_done = steps_done;

    if (steps_done % options.log_every == 0 || steps_done == total_steps) {
      const auto now = std::chrono::steady_clock::now();
      const double window_seconds = std::chrono::duration<double>(now - window_started).count();
      const double mean_loss = window_loss / static_cast<double>(window_steps);
      const double accuracy = static_cast<double>(window_correct) / static_cast<double>(window_images);
      const double images_per_second = static_cast<double>(window_images) / std::max(window_seconds, 1e-9);
      const double elapsed = std::chrono::duration<double>(now - started).count();
      const double eta = static_cast<double>(total_steps - steps_done) * window_seconds / static_cast<double>(window_steps);
      if (first_window) result.first_loss = mean_loss;
      first_window = false;
      result.last_loss = mean_loss;
      result.last_accuracy = accuracy;
      if (!options.quiet)
        print_stderr("classifier step {}/{} (epoch {}/{}) | loss {:.4f} | accuracy {:.1f}% | lr {:.2e} | {:.0f} img/s | eta {}\n",
                   steps_done, total_steps, step / batches_per_epoch + 1, total_epochs, mean_loss, 100.0 * accuracy, learning_rate,
                   images_per_second, format_duration(eta));
      Json record = Json::object();
      record["step"] = steps_done;
      record["epoch"] = static_cast<double>(steps_done) / static_cast<double>(batches_per_epoch);
      record["loss"] = mean_loss;
      record["accuracy"] = accuracy;
      record["learning_rate"] = learning_rate;
      record["images_per_second"] = images_per_second;
      record["elapsed_seconds"] = elapsed;
      metrics.write(record);
      window_loss = 0;
      window_correct = window_images = window_steps = 0;
      window_started = now;
    }

    const bool stopping = options.stop_after >= 0 && steps_done - start_step >= options.stop_after;
    if (steps_done % options.checkpoint_every == 0 || steps_done == total_steps || stopping) save_checkpoint(steps_done);
    if (stopping) {
      stopped_early = steps_done < total_steps;
      break;
    }
  }
  if (start_step >= total_steps && !options.quiet)
    print_stderr("nothing to do: the checkpoint is already at step {} (raise --epochs or --steps to continue)\n",
               start_step);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  if (!result.interrupted && !stopped_early && evaluation.images.defined()) {
    result.evaluation_accuracy =
        evaluate_classifier_accuracy(classifier, evaluation.images, evaluation.labels, 256, options.device);
    result.evaluation_images = evaluation.images.size(0);
    Json record = Json::object();
    record["step"] = result.steps_done;
    record["evaluation_accuracy"] = result.evaluation_accuracy;
    record["evaluation_images"] = result.evaluation_images;
    record["evaluation_data"] = fmt::format("{} ({})", options.evaluation.path, options.evaluation.split);
    metrics.write(record);
    if (!options.quiet)
      print_stderr("classifier accuracy on {} ({}): {:.2f}% of {} images\n", options.evaluation.path,
                 options.evaluation.split, 100.0 * result.evaluation_accuracy, result.evaluation_images);
  }
  return result;
}

}  // namespace maskgit
