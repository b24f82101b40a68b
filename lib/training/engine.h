#pragma once
// The training engine every stage runs on (tokenizer, transformer, classifier, and any later
// one): a stage says what its model is, what a step's loss is on a shard of a batch, and what
// its checkpoint holds beyond the model; the engine owns everything around that, the same way
// for every stage:
//   - options checked before any work; a fresh run never silently replaces an earlier one
//     (run_guard.h); temporaries of killed writers removed;
//   - resume: the checkpoint is read once and its metadata validated strictly (CheckpointReader);
//     seed, batch size and data limit come from it, so the run continues the same data order;
//   - the step loop: deterministic global batches (Batcher over (seed, epoch)), each rank's
//     shard of them, the loss normalised over the whole global batch, gradients averaged over
//     ranks (DataParallelGroup, PyTorch's c10d), LibTorch's AdamW with decoupled weight decay on
//     tensors of two or more dimensions only (two parameter groups), the warm-up + cosine
//     learning-rate schedule;
//   - logging: a progress line on stderr and a JSON-lines metrics log, written by rank 0 only,
//     with every rank's numbers in them (losses and metrics are reduced over ranks each step);
//   - interrupts (Ctrl-C / SIGTERM on any rank: every rank stops at the same step, rank 0
//     saves),
//     --stop-after, periodic checkpoints and the "usable model written with every checkpoint"
//     rule; a non-finite loss or weights stop the run without writing anything.
// Checkpoints are safetensors files written atomically by rank 0: the model under "model.",
// the optimizer state under "adam.<parameter>.m|v" + metadata "adam.step" (the layout of the
// earlier hand-written Adam, so older checkpoints resume), the stage's own tensors, and
// metadata (docs/training.md §2 lists every key).
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "data/dataset.h"
#include "io/json.h"
#include "io/safetensors.h"

namespace maskgit {

class DataParallelGroup;

// The settings every stage shares. A stage's options derive from this and set their own
// defaults in their constructor.
struct TrainingRunOptions {
  DatasetSpec data;
  int64_t steps = 1000;      // total optimisation steps (a resumed run continues up to this)
  int64_t batch_size = 64;   // images per rank per step; the global batch is batch_size × ranks
  double learning_rate = 1e-3;  // peak of the schedule
  int64_t warmup_steps = 100;
  double final_lr_fraction = 0.05;  // the cosine decays to learning_rate × this at the last step
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.0;  // decoupled (AdamW); applied to tensors with ≥ 2 dimensions only
  int64_t checkpoint_every = 500;
  int64_t log_every = 50;
  uint64_t seed = 1;
  bool resume = false;
  // A fresh run (no `resume`) refuses a directory that holds the same stage's checkpoint or
  // model unless `overwrite`; then it discards that checkpoint and starts over.
  bool overwrite = false;
  int64_t stop_after = -1;   // stop (with a checkpoint) after this many steps of this run (≥ 1; -1: off)
  bool quiet = false;        // no progress lines on stderr
  std::string metrics_path;  // default: the stage's <dir>/train-state/<stage>-metrics.jsonl
  torch::Device device = torch::kCPU;
  // The process group of a data-parallel run (this process is one rank of it); null: one process.
  std::shared_ptr<DataParallelGroup> group;
  // On resume, the schedule the checkpoint records ("schedule": total steps, peak learning
  // rate, warm-up) replaces `steps`, `learning_rate` and `warmup_steps` where these say the
  // value was not given (a command line without --steps, --lr, --warmup): a resumed run keeps
  // its schedule. Library callers' values are used as they are (true).
  bool steps_given = true, learning_rate_given = true, warmup_given = true;
  // On resume the checkpoint's seed and global batch size always apply (they fix the data
  // order). Where these say the value was given (a command line with --seed, --batch-size), a
  // value that differs from the checkpoint's is refused, InvalidArgument("seed"/"batch_size"),
  // rather than silently replaced. Library callers' values are replaced (false).
  bool seed_given = false, batch_size_given = false;
  // Settings given for a resumed run that its checkpoint records (the architecture, say): the
  // field `field` of the JSON object in metadata `key` must equal `value` (a number compares
  // by value), or the run is refused with InvalidArgument(field) before anything is built. A
  // checkpoint without `key` or `field` (an earlier version's) is not checked.
  struct RecordedSetting {
    std::string key, field;
    Json value;
  };
  std::vector<RecordedSetting> resume_checks;
};

// A checkpoint's metadata and tensors, read strictly: every accessor names the file and the
// key in its error, Error(bad_input).
class CheckpointReader {
 public:
  CheckpointReader() = default;
  // Reads `path`; Error(bad_input) naming it when it is not a valid safetensors file.
  explicit CheckpointReader(std::string path);
  // Parses `bytes` (a checkpoint read elsewhere, e.g. by rank 0), naming `path` in errors.
  static CheckpointReader from_bytes(std::string path, const std::string& bytes);

  const std::string& path() const { return path_; }
  const SafetensorsFile& file() const { return file_; }
  bool has(const std::string& key) const { return file_.metadata.count(key) != 0; }
  // The metadata value of `key`; missing is an error.
  const std::string& text(const std::string& key) const;
  // A decimal integer in [minimum, maximum] with nothing else around it ("12abc" is refused).
  int64_t integer(const std::string& key, int64_t minimum, int64_t maximum) const;
  // A whole number 0..2^64-1 (the seed).
  uint64_t unsigned_integer(const std::string& key) const;
  // The metadata value parsed as JSON (strictly, lib/io/json.h).
  Json json(const std::string& key) const;
  // `parse(json(key))`, e.g. a configuration's from_json; what it throws becomes "bad <key>: ...".
  template <typename Parse>
  auto parsed(const std::string& key, Parse parse) const -> decltype(parse(Json())) {
    const Json value = json(key);
    try {
      return parse(value);
    } catch (const std::exception& e) {
      fail("bad " + key + ": " + e.what());
    }
  }
  // The tensor `name` (a copy, on the CPU); missing is an error naming `hint` when given.
  torch::Tensor tensor(const std::string& name, const std::string& hint = "") const;
  // A bad-input error about this file: "<path>: <message>".
  [[noreturn]] void fail(const std::string& message) const;

 private:
  std::string path_;
  SafetensorsFile file_;
};

// A checkpoint being written: the stage adds its tensors and metadata.
struct CheckpointWriter {
  SafetensorsFile file;
  void add_tensor(const std::string& name, const torch::Tensor& value);
  void add_module(const torch::nn::Module& module, const std::string& prefix);
  void set(const std::string& key, const std::string& value) { file.metadata[key] = value; }
};

// Where a step's shard lies in the global batch.
struct StepBatch {
  int64_t step = 0;                   // 0-based
  std::vector<int64_t> global_indices;  // the whole global batch's dataset indices, in order
  int64_t shard_begin = 0;            // this rank's rows: [shard_begin, shard_begin + shard_size)
  int64_t shard_size = 0;
  int rank = 0, world_size = 1;
  // This rank's dataset indices.
  std::vector<int64_t> shard_indices() const;
  // The shard's rows of a tensor that holds one row per image of the global batch.
  torch::Tensor shard_rows(const torch::Tensor& global) const { return global.narrow(0, shard_begin, shard_size); }
};

// What a stage's step computed on its shard.
struct StepOutput {
  // Scalar: the mean loss over `weight` items of this rank's shard (images, or masked tokens),
  // with its graph. The engine rescales it so that the averaged gradient is that of the mean
  // over the whole global batch.
  torch::Tensor loss;
  double weight = 1;
  // Scalars: per-item means over the same items (accuracy, reconstruction MSE), reduced over
  // ranks with the same weights as the loss, in the step's one reduction (read on the CPU after
  // the update is queued).
  std::vector<torch::Tensor> metrics;
  // Optional float64 CPU tensor summed over ranks (e.g. counts of codebook use); the sum is
  // handed to TrainingStage::after_update.
  torch::Tensor sums;
};

// A logging window's numbers, reduced over ranks.
struct WindowSummary {
  int64_t steps_done = 0, total_steps = 0;
  double mean_loss = 0;
  std::vector<double> mean_metrics;
  double learning_rate = 0, items_per_second = 0, eta_seconds = 0, elapsed_seconds = 0;
};

// What a run did.
struct TrainingRunResult {
  int64_t start_step = 0, steps_done = 0, total_steps = 0;
  bool interrupted = false;
  bool stopped_early = false;  // --stop-after ended the run before total_steps
  double first_loss = 0;       // mean over the first logging window of this run
  double last_loss = 0;        // mean over the last logging window of this run
  std::vector<double> last_metrics;
  double seconds = 0;
};

// The part of training that differs between stages. Called on every rank, in this order:
//   read_settings (resume only) → prepare → [load_state (resume) | initialise (fresh)] →
//   describe → per step: forward → after_update → (report on log steps, rank 0) →
//   (write_checkpoint + write_model on checkpoint steps, rank 0).
class TrainingStage {
 public:
  virtual ~TrainingStage() = default;
  // "tokenizer", "transformer", "classifier": in messages, the checkpoint's "stage" metadata
  // and the progress lines.
  virtual std::string name() const = 0;
  // The directory the stage writes (its model files and train-state/).
  virtual std::string output_dir() const = 0;
  // The file whose presence means "a trained model of this stage is here".
  virtual std::string weights_path() const = 0;
  // Every file the stage writes besides the checkpoint and the metrics log (their stale
  // temporaries are removed at start).
  virtual std::vector<std::string> written_files() const = 0;

  // Resume: take the architecture and the stage's own settings from the checkpoint (the
  // engine has already taken step, seed, batch size and data limit).
  virtual void read_settings(const CheckpointReader& checkpoint) = 0;
  // Loads data, builds the model on options.device; returns the number of training items.
  virtual int64_t prepare() = 0;
  // The total number of steps (the classifier counts epochs when no step count is given).
  virtual int64_t total_steps(int64_t dataset_size) const = 0;
  // The module whose parameters are trained; its parameters and buffers are checkpointed
  // under "model." and broadcast from rank 0 at start.
  virtual torch::nn::Module& module() = 0;
  // Resume: the model and the stage's own state from the checkpoint.
  virtual void load_state(const CheckpointReader& checkpoint) = 0;
  // Fresh run: anything done once before the first step (e.g. codebook initialisation from
  // the first global batch). Default: nothing.
  virtual void initialise(const StepBatch& first_batch) { (void)first_batch; }
  // One line after the set-up ("transformer: 1.2M parameters, ...").
  virtual std::string describe(int64_t dataset_size) const = 0;

  // The loss of this rank's shard of step `batch.step`. A stage may run its own collectives
  // here (options.group; every rank calls forward once per step, so they meet in the same
  // order), and update a model of its own with its own optimizer (the tokenizer's
  // discriminator), as long as that model's state goes into write_checkpoint/load_state.
  virtual StepOutput forward(const StepBatch& batch) = 0;
  // After the optimizer's update of step `steps_done - 1` (EMA, codebook restarts);
  // `sums` is StepOutput::sums summed over ranks (undefined when the stage gave none).
  virtual void after_update(int64_t steps_done, const torch::Tensor& sums) { (void)steps_done, (void)sums; }
  // Tensors that must be finite before a checkpoint is written, beyond the model and the
  // optimizer state (e.g. EMA weights).
  virtual std::vector<torch::Tensor> extra_tensors() const { return {}; }
  // Said after "<stage> step s/N" in the progress line, e.g. " (epoch 2/5)". Default: nothing.
  virtual std::string step_note(const WindowSummary& window) const { (void)window; return ""; }
  // A logging window: the stage's part of the progress line (after "<stage> step s/N | ")
  // and of the metrics record (after "step"; the engine adds learning_rate,
  // images_per_second and elapsed_seconds).
  virtual std::string progress(const WindowSummary& window) const = 0;
  virtual void record(const WindowSummary& window, Json& record) const = 0;
  // The stage's own checkpoint tensors and metadata (architecture, ...).
  virtual void write_checkpoint(CheckpointWriter& checkpoint) const = 0;
  // The usable model (weights + config), written with every checkpoint.
  virtual void write_model() const = 0;
  // Rank 0, after a run that reached its last step (not interrupted or stopped early): a
  // last record for the metrics log (e.g. the accuracy on held-out data), or none.
  virtual std::optional<Json> after_run(const TrainingRunResult& result) { (void)result; return std::nullopt; }
  // The stage's own settings that every rank must share, as "name=value" lines (the engine
  // compares them, with its own, between ranks before any work). Default: none.
  virtual std::vector<std::string> settings() const { return {}; }
  // How to continue when there is nothing to do, e.g. "raise --steps to continue".
  virtual std::string more_steps_hint() const { return "raise --steps to continue"; }
};

// Runs `stage` with `options` to the end (options.group: null runs in this process alone and is
// set to that one-process group), an interrupt, --stop-after or an error. Throws
// InvalidArgument for bad options (before any work), Error(bad_input) for a bad checkpoint or
// data, Error(io_error) for an output that cannot be written, Error(failure) for a diverged
// run or a lost rank.
TrainingRunResult run_training(TrainingStage& stage, TrainingRunOptions& options);

// <dir>/train-state/<stage>.safetensors and <dir>/train-state/<stage>-metrics.jsonl.
std::string training_state_path(const std::string& dir, const std::string& stage);
std::string training_metrics_path(const std::string& dir, const std::string& stage);

// Linear warm-up to `peak`, then cosine decay to peak·final_fraction at `total` steps.
double warmup_cosine_lr(int64_t step, int64_t total, int64_t warmup, double peak, double final_fraction);

}  // namespace maskgit
