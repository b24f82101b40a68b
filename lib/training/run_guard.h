#pragma once
// What every trainer does around a run, so that the three stages behave alike:
// - a fresh run never silently replaces an earlier run of the same stage (its checkpoint or
//   model) in the output directory: that takes --resume (continue) or --overwrite (start over);
// - temporaries left beside the trainer's files by a killed writer are removed on start;
// - a run whose loss or weights stop being finite stops at once, without writing anything,
//   so the last checkpoint and the model saved with it stay as they were.
// Header-only: small helpers of the training engine (engine.cpp) and its stages.
#include <fmt/format.h>
#include <signal.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "common/error.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"

namespace maskgit {

// A checkpoint's "seed" metadata (or `key`'s): a whole number 0..2^64-1 (every seed --seed
// accepts). Throws Error(bad_input) naming `source` otherwise.
inline uint64_t metadata_seed(const SafetensorsFile& file, const std::string& source, const std::string& key = "seed") {
  const auto it = file.metadata.find(key);
  const std::string text = it == file.metadata.end() ? std::string() : it->second;
  const bool digits = !text.empty() && text.size() <= 20 && text.find_first_not_of("0123456789") == std::string::npos;
  errno = 0;
  const uint64_t value = digits ? std::strtoull(text.c_str(), nullptr, 10) : 0;
  if (!digits || errno == ERANGE)
    throw_bad_input(fmt::format("{}: metadata \"{}\" is not a whole number from 0 to 2^64-1", source, key));
  return value;
}

// Refuses, before any work, to start a fresh run of `stage` in `out_dir` over that stage's
// checkpoint (`state_path`) or model (`model_path`): Error(io_error) naming the directory and
// the way on. `resume` and `overwrite` exclude each other (InvalidArgument("overwrite")).
inline void refuse_to_replace_run(const std::string& stage, const std::string& out_dir, const std::string& state_path,
                                  const std::string& model_path, bool resume, bool overwrite) {
  namespace fs = std::filesystem;
  if (resume && overwrite)
    throw InvalidArgument("overwrite", "starts the run over, so it cannot be combined with resuming it");
  if (resume || overwrite) return;
  auto relative = [&](const std::string& path) { return fs::path(path).lexically_relative(out_dir).string(); };
  if (file_exists(state_path))
    throw_io_error(fmt::format("{}: already holds a {} training run ({}); pass --resume to continue it or "
                               "--overwrite to start over",
                               out_dir, stage, relative(state_path)));
  if (file_exists(model_path))
    throw_io_error(fmt::format("{}: already holds a trained {} ({}) and no checkpoint to --resume; pass "
                               "--overwrite to train a new one in its place",
                               out_dir, stage, relative(model_path)));
}

// Adam's step (lr / (1 - beta1^t), at most lr / (1 - beta1)) and the decoupled decay (lr × decay)
// are applied as float32 scalars; a learning rate that overflows them is InvalidArgument("learning_rate"),
// before any work.
inline void check_learning_rate(double learning_rate, double beta1, double weight_decay) {
  const double largest_step = learning_rate / (1.0 - beta1);
  if (!(learning_rate > 0) || !std::isfinite(largest_step) || largest_step > FLT_MAX ||
      learning_rate * weight_decay > FLT_MAX)
    throw InvalidArgument("learning_rate",
                          fmt::format("{:g} is out of range (positive, and at most {:.3g} so that Adam's steps fit in float32)",
                                      learning_rate,
                                      std::min(FLT_MAX * (1.0 - beta1), weight_decay > 0 ? FLT_MAX / weight_decay : FLT_MAX)));
}

// Removes the checkpoint of an earlier run when a run starts over (--overwrite), so that the
// checkpoint and the metrics log, which a fresh run starts empty, always describe one run.
inline void discard_earlier_checkpoint(const std::string& state_path) {
  std::error_code error;
  std::filesystem::remove(state_path, error);
  if (error) throw_io_error(fmt::format("{}: cannot remove the earlier run's checkpoint: {}", state_path, error.message()));
}

// write_file_atomic writes "<path>.tmp.<pid>" and renames it over <path>; a writer killed in
// between leaves its temporary behind. Those beside `paths` whose process is gone are removed
// (they are never read: every reader opens <path> itself).
inline void remove_stale_temporaries(const std::vector<std::string>& paths) {
  namespace fs = std::filesystem;
  for (const std::string& path : paths) {
    const fs::path target(path);
    const std::string prefix = target.filename().string() + ".tmp.";
    fs::path directory = target.parent_path();
    if (directory.empty()) directory = ".";
    std::error_code error;
    fs::directory_iterator entries(directory, error);
    if (error) continue;
    for (const fs::directory_entry& entry : entries) {
      const std::string name = entry.path().filename().string();
      if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
      const std::string digits = name.substr(prefix.size());
      if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
      const pid_t pid = static_cast<pid_t>(std::stol(digits));
      if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;  // its writer may be alive
      std::error_code ignored;
      if (fs::is_regular_file(fs::symlink_status(entry.path(), ignored))) fs::remove(entry.path(), ignored);
    }
  }
}

// True when every floating-point value of `tensors` is finite (one synchronisation in all).
inline bool all_finite(const std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> checks;
  for (const torch::Tensor& tensor : tensors)
    if (tensor.defined() && tensor.is_floating_point() && tensor.numel() > 0)  // gathered where the first one lives
      checks.push_back(torch::isfinite(tensor).all().to(checks.empty() ? tensor.device() : checks.front().device()));
  if (checks.empty()) return true;
  return torch::stack(checks).all().item<bool>();
}

// The parameters and buffers of `module`.
inline std::vector<torch::Tensor> module_tensors(const torch::nn::Module& module) {
  std::vector<torch::Tensor> tensors = module.parameters();
  for (const torch::Tensor& buffer : module.buffers()) tensors.push_back(buffer);
  return tensors;
}

// A run whose loss or weights stopped being finite (Error(failure)); every rank of a
// data-parallel run reaches it at the same step.
class TrainingDiverged : public Error {
 public:
  explicit TrainingDiverged(const std::string& message) : Error(ExitCode::failure, message) {}
};

// Stops a run whose loss or weights are no longer finite; nothing of the failing step is
// written. `step` counts from 1 as in the progress lines; `last_checkpoint` is the step of the
// newest checkpoint of this run (or the one it resumed), -1 when there is none.
[[noreturn]] inline void throw_diverged(const std::string& stage, int64_t step, const std::string& what,
                                        int64_t last_checkpoint, const std::string& state_path, double learning_rate) {
  const std::string kept =
      last_checkpoint >= 0
          ? fmt::format("the last checkpoint (step {}, {}) and the model saved with it are kept; --resume with a "
                        "lower --lr (this run: {:g})",
                        last_checkpoint, state_path, learning_rate)
          : fmt::format("this run wrote no checkpoint yet; start again with a lower --lr (this run: {:g})",
                        learning_rate);
  throw TrainingDiverged(fmt::format("{} training diverged at step {}: {}; stopped without saving: {}", stage, step, what, kept));
}

// "the loss is NaN" / "the loss is +inf".
inline std::string describe_non_finite_loss(double loss) {
  return std::isnan(loss) ? "the loss is NaN" : (loss > 0 ? "the loss is +inf" : "the loss is -inf");
}

}  // namespace maskgit
