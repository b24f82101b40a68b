#include "training/engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "common/console.h"
#include "common/error.h"
#include "data/batcher.h"
#include "io/atomic_file.h"
#include "io/tensor_io.h"
#include "runtime/threads.h"
#include "training/distributed.h"
#include "training/interrupt.h"
#include "training/metrics_log.h"
#include "training/optimizer.h"
#include "training/progress.h"
#include "training/run_guard.h"

namespace maskgit {
namespace fs = std::filesystem;

namespace {

// The checkpoint layout this engine writes (metadata "format"). Checkpoints of the earlier
// per-stage trainers have no "format" and the same keys; they resume.
constexpr const char* kCheckpointFormat = "maskgit-cpp.train-state/2";
constexpr int64_t kMaxSteps = std::numeric_limits<int64_t>::max() / 4;

// The seconds since `since`.
double seconds_since(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// Rank 0's bytes on every rank (a checkpoint read on rank 0's machine only).
std::string broadcast_bytes(DataParallelGroup& group, std::string bytes) {
  if (group.world_size() == 1) return bytes;
  torch::Tensor local;
  if (group.is_main())
    local = torch::from_blob(bytes.data(), {static_cast<int64_t>(bytes.size())}, torch::kUInt8);
  const torch::Tensor received = broadcast_from_main(group, local).contiguous();
  return std::string(reinterpret_cast<const char*>(received.data_ptr<uint8_t>()), static_cast<size_t>(received.numel()));
}

// Runs `work`, which every rank does alike and so fails alike (options, the checkpoint rank 0
// sent): on a rank other than 0 its error becomes AlreadyReported, since rank 0 reports it.
template <typename Work>
auto alike_on_every_rank(const DataParallelGroup& group, Work&& work) -> decltype(work()) {
  try {
    return work();
  } catch (const AlreadyReported&) {
    throw;
  } catch (const Error& error) {
    if (group.is_main()) throw;
    throw AlreadyReported(error.code(), error.what());
  }
}

// Every rank must be started with the same settings (the same command): rank 0's `settings`
// ("name=value" lines) are sent to every rank and compared; on any difference every rank stops
// before it could deadlock or train something the checkpoint does not record. The rank that
// differs names the first setting (InvalidArgument("settings"), status 2); rank 0 says which
// ranks differ; the others stop quietly.
void agree_on_settings(DataParallelGroup& group, const std::vector<std::string>& settings, const std::string& what) {
  if (group.world_size() == 1) return;
  std::string text;
  for (const std::string& line : settings) text += line + "\n";
  std::string theirs;
  {
    torch::Tensor local;
    if (group.is_main()) local = torch::from_blob(text.data(), {static_cast<int64_t>(text.size())}, torch::kUInt8);
    const torch::Tensor received = broadcast_from_main(group, local).contiguous();
    theirs.assign(reinterpret_cast<const char*>(received.data_ptr<uint8_t>()), static_cast<size_t>(received.numel()));
  }
  std::string difference;
  if (theirs != text) {
    std::vector<std::string> main_lines;
    for (size_t begin = 0; begin < theirs.size();) {
      const size_t end = theirs.find('\n', begin);
      main_lines.push_back(theirs.substr(begin, end - begin));
      begin = end + 1;
    }
    for (size_t i = 0; i < std::max(settings.size(), main_lines.size()); ++i) {
      const std::string mine = i < settings.size() ? settings[i] : "(nothing)";
      const std::string main_line = i < main_lines.size() ? main_lines[i] : "(nothing)";
      if (mine != main_line) {
        difference = fmt::format("{} here, {} on rank 0", mine, main_line);
        break;
      }
    }
  }
  std::vector<torch::Tensor> flags{torch::zeros({group.world_size()}, torch::kLong).to(group.device())};
  flags[0][group.rank()] = difference.empty() ? 0 : 1;
  group.all_reduce_sum(flags);
  const torch::Tensor differing = flags[0].to(torch::kCPU).nonzero().flatten();
  if (differing.numel() == 0) return;
  if (!difference.empty())
    throw InvalidArgument("settings", fmt::format("rank {} of {} was started with other {} than rank 0 ({}); start "
                                                  "every rank with the same command",
                                                  group.rank(), group.world_size(), what, difference));
  if (group.is_main()) {
    std::vector<int64_t> ranks(differing.data_ptr<int64_t>(), differing.data_ptr<int64_t>() + differing.numel());
    throw InvalidArgument("settings", fmt::format("rank(s) {} of {} were started with other {} than rank 0 (they say "
                                                  "which); start every rank with the same command",
                                                  fmt::join(ranks, ", "), group.world_size(), what));
  }
  const InvalidArgument reason("settings", "another rank was started with other settings");
  throw AlreadyReported(reason.code(), reason.what());  // rank 0 and that rank say it
}

// The engine's own settings that every rank must share.
std::vector<std::string> run_settings(const TrainingStage& stage, const TrainingRunOptions& options) {
  return {"stage=" + stage.name(),
          "output=" + stage.output_dir(),
          fmt::format("data={} split={} limit={}", options.data.path, options.data.split, options.data.limit),
          fmt::format("steps={} batch_size={} seed={}", options.steps, options.batch_size, options.seed),
          fmt::format("learning_rate={:.17g} warmup={} final_lr_fraction={:.17g}", options.learning_rate,
                      options.warmup_steps, options.final_lr_fraction),
          fmt::format("betas={:.17g},{:.17g} eps={:.17g} weight_decay={:.17g}", options.beta1, options.beta2,
                      options.eps, options.weight_decay),
          fmt::format("checkpoint_every={} stop_after={}", options.checkpoint_every, options.stop_after),
          fmt::format("resume={} overwrite={}", options.resume, options.overwrite),
          fmt::format("given: steps={} learning_rate={} warmup={} seed={} batch_size={}", options.steps_given,
                      options.learning_rate_given, options.warmup_given, options.seed_given, options.batch_size_given),
          "metrics=" + options.metrics_path,
          "resume_checks=" + [&] {
            std::string checks;
            for (const auto& check : options.resume_checks)
              checks += fmt::format("{}.{}={} ", check.key, check.field, dump_json(check.value));
            return checks;
          }()};
}

// A recorded setting as the user types it: a list comma-separated ("1,2,4"), others as JSON.
std::string setting_text(const Json& value) {
  if (!value.is_array()) return dump_json(value);
  std::string text;
  for (const Json& item : value) text += (text.empty() ? "" : ",") + dump_json(item);
  return text;
}

// The metrics log is appended to, and a fresh run starts it empty: refuse a path that is one of
// the run's own files or holds something other than a metrics log (a file given by mistake).
void check_metrics_path(const std::string& metrics_path, const std::vector<std::string>& own_files) {
  std::error_code error;
  const fs::path target = fs::weakly_canonical(metrics_path, error);
  for (const std::string& own : own_files) {
    std::error_code ignored;
    if (!error && target == fs::weakly_canonical(own, ignored))
      throw InvalidArgument("metrics", fmt::format("{} is one of this run's own files", metrics_path), ExitCode::io_error);
  }
  if (!fs::is_regular_file(metrics_path, error) || fs::file_size(metrics_path, error) == 0) return;
  std::ifstream file(metrics_path, std::ios::binary);  // its first line is enough
  std::string first;
  std::getline(file, first);
  bool metrics_log = false;
  try {
    metrics_log = parse_json(first).is_object();
  } catch (const std::exception&) {
  }
  if (!metrics_log)
    throw InvalidArgument("metrics",
                          fmt::format("{} exists and is not a metrics log (JSON lines); remove it or choose another file",
                                      metrics_path),
                          ExitCode::io_error);
}

// Options that no flag can make wrong are still checked here, once, for library callers.
void check_run_options(const TrainingRunOptions& options) {
  if (options.batch_size < 1) throw InvalidArgument("batch_size", "must be positive");
  if (options.steps < 0) throw InvalidArgument("steps", "must not be negative");
  if (options.log_every < 1) throw InvalidArgument("log_every", "must be positive");
  if (options.checkpoint_every < 1) throw InvalidArgument("checkpoint_every", "must be positive");
  if (options.warmup_steps < 0) throw InvalidArgument("warmup_steps", "must not be negative");
  // 0 would still train one step: a stop is checked after each step.
  if (options.stop_after < -1 || options.stop_after == 0)
    throw InvalidArgument("stop_after", fmt::format("{} must be -1 (off) or a number of steps (at least 1)", options.stop_after));
  if (!(options.final_lr_fraction >= 0 && options.final_lr_fraction <= 1))
    throw InvalidArgument("final_lr_fraction", "must be between 0 and 1");
  if (!(options.beta1 >= 0 && options.beta1 < 1) || !(options.beta2 >= 0 && options.beta2 < 1))
    throw InvalidArgument("betas", "must be in [0, 1)");
  if (!(options.eps > 0) || !std::isfinite(options.eps)) throw InvalidArgument("eps", "must be a finite number > 0");
  if (!(options.weight_decay >= 0) || !std::isfinite(options.weight_decay))
    throw InvalidArgument("weight_decay", "must be a finite number ≥ 0");
  check_learning_rate(options.learning_rate, options.beta1, options.weight_decay);
}

}  // namespace

// --- Checkpoints ---------------------------------------------------------------------------

CheckpointReader::CheckpointReader(std::string path) : path_(std::move(path)) {
  try {
    file_ = read_safetensors(path_);
  } catch (const SafetensorsError& e) {
    throw_bad_input(e.what());
  }
}

CheckpointReader CheckpointReader::from_bytes(std::string path, const std::string& bytes) {
  CheckpointReader reader;
  reader.path_ = std::move(path);
  try {
    reader.file_ = parse_safetensors(bytes, reader.path_);
  } catch (const SafetensorsError& e) {
    throw_bad_input(e.what());
  }
  return reader;
}

void CheckpointReader::fail(const std::string& message) const {
  throw_bad_input(fmt::format("{}: {}", path_, message));
}

const std::string& CheckpointReader::text(const std::string& key) const {
  const auto it = file_.metadata.find(key);
  if (it == file_.metadata.end()) fail(fmt::format("missing metadata \"{}\"", key));
  return it->second;
}

int64_t CheckpointReader::integer(const std::string& key, int64_t minimum, int64_t maximum) const {
  const std::string& value = text(key);
  const bool negative = !value.empty() && value[0] == '-';
  const std::string digits = negative ? value.substr(1) : value;
  const bool well_formed = !digits.empty() && digits.size() <= 18 && digits.find_first_not_of("0123456789") == std::string::npos;
  const int64_t number = well_formed ? (negative ? -1 : 1) * std::stoll(digits) : 0;
  if (!well_formed || number < minimum || number > maximum)
    fail(fmt::format("metadata \"{}\" is \"{}\", expected an integer from {} to {}", key, value, minimum, maximum));
  return number;
}

uint64_t CheckpointReader::unsigned_integer(const std::string& key) const {
  text(key);  // missing: says so
  // The one reader of whole numbers up to 2^64-1 (run_guard.h), so seeds are read alike.
  return metadata_seed(file_, path_, key);
}

Json CheckpointReader::json(const std::string& key) const {
  try {
    return parse_json(text(key));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail(fmt::format("metadata \"{}\" is not valid JSON ({})", key, e.what()));
  }
}

torch::Tensor CheckpointReader::tensor(const std::string& name, const std::string& hint) const {
  const SafetensorsEntry* entry = file_.find(name);
  if (!entry) fail(fmt::format("missing {} \"{}\"", hint.empty() ? std::string("tensor") : hint, name));
  try {
    return entry_to_tensor(*entry);
  } catch (const std::exception& e) {
    fail(fmt::format("tensor \"{}\": {}", name, e.what()));
  }
}

void CheckpointWriter::add_tensor(const std::string& name, const torch::Tensor& value) {
  file.tensors.push_back(tensor_to_entry(name, value));
}

void CheckpointWriter::add_module(const torch::nn::Module& module, const std::string& prefix) {
  append_module_state(file, module, prefix);
}

std::vector<int64_t> StepBatch::shard_indices() const {
  return std::vector<int64_t>(global_indices.begin() + shard_begin, global_indices.begin() + shard_begin + shard_size);
}

std::string training_state_path(const std::string& dir, const std::string& stage) {
  return (fs::path(dir) / "train-state" / (stage + ".safetensors")).string();
}

std::string training_metrics_path(const std::string& dir, const std::string& stage) {
  return (fs::path(dir) / "train-state" / (stage + "-metrics.jsonl")).string();
}

double warmup_cosine_lr(int64_t step, int64_t total, int64_t warmup, double peak, double final_fraction) {
  if (warmup > 0 && step < warmup) return peak * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (total <= warmup) return peak;
  const double progress = std::min(1.0, static_cast<double>(step - warmup) / static_cast<double>(total - warmup));
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  return peak * (final_fraction + (1.0 - final_fraction) * cosine);
}

// --- The run -------------------------------------------------------------------------------

TrainingRunResult run_training(TrainingStage& stage, TrainingRunOptions& options) {
  if (!options.group) options.group = DataParallelGroup::single();
  const std::shared_ptr<DataParallelGroup> group = options.group;
  const bool main = group->is_main();
  const int world = group->world_size();
  const bool talk = main && !options.quiet;
  alike_on_every_rank(*group, [&] { check_run_options(options); });
  agree_on_settings(*group, run_settings(stage, options), "settings");

  const std::string name = stage.name();
  const std::string state_path = training_state_path(stage.output_dir(), name);
  const std::string metrics_path =
      options.metrics_path.empty() ? training_metrics_path(stage.output_dir(), name) : options.metrics_path;

  // Rank 0 checks the output directory and reads the checkpoint; every rank gets its bytes,
  // so that ranks on other machines resume from the file rank 0 wrote.
  std::string checkpoint_bytes;
  group->run_on_main("checking the output directory", [&] {
    refuse_to_replace_run(name, stage.output_dir(), state_path, stage.weights_path(), options.resume, options.overwrite);
    std::vector<std::string> written = stage.written_files();
    written.push_back(state_path);
    std::vector<std::string> own = written;
    own.push_back(options.data.path);
    check_metrics_path(metrics_path, own);
    written.push_back(metrics_path);
    remove_stale_temporaries(written);
    if (options.resume) {
      if (!file_exists(state_path))
        throw InvalidArgument("resume", fmt::format("no checkpoint at {}", state_path), ExitCode::bad_input);
      checkpoint_bytes = read_file_bytes(state_path);
    }
  });
  CheckpointReader checkpoint;
  int64_t start_step = 0;
  if (options.resume) {
    const std::string bytes = broadcast_bytes(*group, std::move(checkpoint_bytes));
    alike_on_every_rank(*group, [&] { checkpoint = CheckpointReader::from_bytes(state_path, bytes); });
  }
  if (options.resume) alike_on_every_rank(*group, [&] {
    if (checkpoint.has("stage") && checkpoint.text("stage") != name)
      checkpoint.fail(fmt::format("is a checkpoint of the {} stage, not of the {}", checkpoint.text("stage"), name));
    if (checkpoint.has("format") && checkpoint.text("format") != kCheckpointFormat)
      checkpoint.fail(fmt::format("has format \"{}\"; this build reads \"{}\" (and the earlier unversioned one)",
                                  checkpoint.text("format"), kCheckpointFormat));
    // Seed, batch size and data limit come from the checkpoint so that the resumed run
    // continues the same data order; the global batch is split over this run's ranks.
    start_step = checkpoint.integer("step", 0, kMaxSteps);
    const uint64_t recorded_seed = checkpoint.unsigned_integer("seed");
    if (options.seed_given && options.seed != recorded_seed)
      throw InvalidArgument("seed", fmt::format("{}, but the checkpoint {} records {}: a resumed run keeps its "
                                                "checkpoint's data order (start a new run to change it)",
                                                options.seed, state_path, recorded_seed));
    options.seed = recorded_seed;
    const int64_t global_batch = checkpoint.integer("batch_size", 1, int64_t{1} << 40);
    if (global_batch % world != 0)
      throw InvalidArgument("world_size", fmt::format("the checkpoint {} trains on batches of {} images, which do not "
                                                      "split evenly over {} ranks; resume on a number of ranks that divides {}",
                                                      state_path, global_batch, world, global_batch));
    if (options.batch_size_given && options.batch_size * world != global_batch)
      throw InvalidArgument("batch_size",
                            fmt::format("{}{}, but the checkpoint {} records batches of {}: a resumed run keeps its "
                                        "checkpoint's batch size ({} per rank here; leave it out, or start a new run "
                                        "to change it)",
                                        options.batch_size,
                                        world > 1 ? fmt::format(" per rank ({} in all)", options.batch_size * world)
                                                  : std::string(),
                                        state_path, global_batch, global_batch / world));
    options.batch_size = global_batch / world;
    // The data order depends on the dataset's size, so the resumed run trains on the images
    // the checkpoint was trained on: its limit (the first N images, -1 = all) replaces the
    // default; a different explicit limit is refused.
    if (checkpoint.has("limit")) {
      const int64_t limit = checkpoint.integer("limit", -1, int64_t{1} << 40);
      if (options.data.limit != -1 && options.data.limit != limit)
        throw InvalidArgument("limit", fmt::format("the checkpoint {} was trained on {}; resume with that limit or without one",
                                                   state_path, limit < 0 ? std::string("all images")
                                                                         : fmt::format("the first {} images", limit)));
      options.data.limit = limit;
    }
    // The schedule (absent from checkpoints of earlier versions: the options apply).
    if (checkpoint.has("schedule")) {
      checkpoint.parsed("schedule", [&](const Json& json) {
        const auto field = [&](const char* key) -> const Json& {
          if (!json.is_object() || !json.contains(key)) throw std::runtime_error(fmt::format("no \"{}\"", key));
          return json.at(key);
        };
        const Json& steps = field("steps");
        const Json& rate = field("learning_rate");
        const Json& warmup = field("warmup_steps");
        if (!steps.is_number_integer() || steps.get<int64_t>() < 1 || steps.get<int64_t>() > kMaxSteps)
          throw std::runtime_error("\"steps\" is not a number of steps");
        if (!rate.is_number() || !std::isfinite(rate.get<double>()) || rate.get<double>() <= 0 ||
            rate.get<double>() > 1e30)
          throw std::runtime_error("\"learning_rate\" is not a finite rate above 0");
        if (!warmup.is_number_integer() || warmup.get<int64_t>() < 0 || warmup.get<int64_t>() > kMaxSteps)
          throw std::runtime_error("\"warmup_steps\" is not a number of steps");
        if (!options.steps_given) options.steps = steps.get<int64_t>();
        if (!options.learning_rate_given) options.learning_rate = rate.get<double>();
        if (!options.warmup_given) options.warmup_steps = warmup.get<int64_t>();
        return 0;
      });
    }
    for (const auto& check : options.resume_checks) {
      if (!checkpoint.has(check.key)) continue;
      const Json recorded = checkpoint.parsed(check.key, [](const Json& json) { return json; });
      const auto field = recorded.is_object() ? recorded.find(check.field) : recorded.end();
      if (field == recorded.end() || *field == check.value) continue;
      throw InvalidArgument(check.field, fmt::format("{}, but the checkpoint {} records {}: a resumed run keeps its "
                                                     "checkpoint's settings (start a new run to change them)",
                                                     setting_text(check.value), state_path, setting_text(*field)));
    }
    stage.read_settings(checkpoint);
  });
  const int64_t global_batch = options.batch_size * world;

  const int64_t dataset_size = stage.prepare();
  {
    // What the stage built must agree too: its settings (some come from the checkpoint), the
    // data's size and every parameter's name and shape.
    std::vector<std::string> built = stage.settings();
    built.push_back(fmt::format("dataset_size={} batch_size={}", dataset_size, options.batch_size));
    for (const auto& item : stage.module().named_parameters())
      built.push_back(fmt::format("{}={}", item.key(), fmt::join(item.value().sizes(), "x")));
    agree_on_settings(*group, built, "model settings or data");
  }
  if (dataset_size < global_batch)  // the same on every rank: agreed above
    alike_on_every_rank(*group, [&] {
      throw InvalidArgument("batch_size",
                            world == 1 ? fmt::format("{} is larger than the dataset ({} images)", options.batch_size,
                                                     dataset_size)
                                       : fmt::format("{} × {} ranks is larger than the dataset ({} images)",
                                                     options.batch_size, world, dataset_size));
    });
  const int64_t total_steps = stage.total_steps(dataset_size);
  const Batcher batcher(dataset_size, global_batch, options.seed);
  const int64_t batches_per_epoch = batcher.batches_per_epoch();
  auto batch_at = [&](int64_t step) {
    StepBatch batch;
    batch.step = step;
    batch.global_indices = batcher.batch_indices(step / batches_per_epoch, step % batches_per_epoch);
    batch.shard_size = options.batch_size;
    batch.shard_begin = options.batch_size * group->rank();
    batch.rank = group->rank();
    batch.world_size = world;
    return batch;
  };

  torch::nn::Module& module = stage.module();
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (const auto& item : module.named_parameters()) named.emplace_back(item.key(), item.value());
  AdamWOptimizer optimizer(named, AdamWSettings{options.beta1, options.beta2, options.eps, options.weight_decay});
  if (options.resume) {
    alike_on_every_rank(*group, [&] {
      stage.load_state(checkpoint);
      optimizer.load(checkpoint);
    });
    if (talk)
      print_stderr("resuming from step {} of {} (configuration, seed and batch size from the checkpoint: {} images "
                   "per step{})\n",
                   start_step, state_path, global_batch,
                   world > 1 ? fmt::format(", {} per rank", options.batch_size) : std::string());
  } else {
    stage.initialise(batch_at(0));
  }
  checkpoint = CheckpointReader();  // its tensors are copied where they belong
  if (world > 1) {
    // Every rank starts from rank 0's weights (they are equal by construction; this makes sure).
    std::vector<torch::Tensor> weights = module_tensors(module);
    group->broadcast(weights);
  }

  std::unique_ptr<MetricsLog> metrics;
  group->run_on_main("preparing the checkpoint directory", [&] {
    ensure_directory(fs::path(state_path).parent_path().string());
    if (!options.resume) discard_earlier_checkpoint(state_path);
    metrics = std::make_unique<MetricsLog>(metrics_path, options.resume ? start_step : -1);
  });

  int64_t last_checkpoint = options.resume ? start_step : -1;
  auto save_checkpoint = [&](int64_t steps_done) {
    // Never write a model that is not finite (the loss is checked every step; this also covers
    // weights and moments that overflowed in the last update). Every rank holds the same
    // weights, so every rank reaches the same verdict without a collective.
    std::vector<torch::Tensor> tensors = module_tensors(module);
    for (const torch::Tensor& moment : optimizer.moments()) tensors.push_back(moment);
    for (const torch::Tensor& extra : stage.extra_tensors()) tensors.push_back(extra);
    if (!all_finite(tensors))
      throw_diverged(name, steps_done, "the weights are not finite after the update", last_checkpoint, state_path,
                     options.learning_rate);
    if (main) {
      CheckpointWriter writer;
      writer.add_module(module, "model.");
      optimizer.save(writer);
      stage.write_checkpoint(writer);
      writer.set("format", kCheckpointFormat);
      writer.set("stage", name);
      writer.set("step", std::to_string(steps_done));
      writer.set("seed", std::to_string(options.seed));
      writer.set("batch_size", std::to_string(global_batch));
      writer.set("ranks", std::to_string(world));
      writer.set("data", options.data.path);
      writer.set("limit", std::to_string(options.data.limit));
      writer.set("schedule", dump_json(Json{{"steps", total_steps},
                                            {"learning_rate", options.learning_rate},
                                            {"warmup_steps", options.warmup_steps}}));
      write_safetensors(state_path, writer.file);
      stage.write_model();
    }
    last_checkpoint = steps_done;
  };

  TrainingRunResult result;
  result.start_step = start_step;
  result.steps_done = start_step;
  result.total_steps = total_steps;
  if (talk) {
    print_stderr("{}\n", stage.describe(dataset_size));
    if (world > 1)
      print_stderr("data-parallel over {} ranks ({}): {} images per rank, {} per step\n", world,
                   group->backend_name(), options.batch_size, global_batch);
  }

  const auto started = std::chrono::steady_clock::now();
  auto window_started = started;
  double window_loss = 0;
  std::vector<double> window_metrics;
  int64_t window_steps = 0;
  bool first_window = true;
  for (int64_t step = start_step; step < total_steps; ++step) {
    adapt_cpu_threads();
    const StepBatch batch = batch_at(step);
    optimizer.zero_grad();
    StepOutput out = stage.forward(batch);

    // One reduction per step carries the loss, its weight, the metrics, the interrupt flag
    // and the stage's sums: [loss·w, w, metric·w..., interrupt, sums...], float64.
    const int64_t metric_count = static_cast<int64_t>(out.metrics.size());
    std::vector<torch::Tensor> parts;
    const torch::Tensor loss_value = out.loss.detach().to(torch::kFloat64).reshape({1});
    parts.push_back(loss_value * out.weight);
    parts.push_back(torch::full({1}, out.weight, torch::dtype(torch::kFloat64).device(loss_value.device())));
    for (const torch::Tensor& metric : out.metrics)
      parts.push_back(metric.detach().to(loss_value.device(), torch::kFloat64).reshape({1}) * out.weight);
    parts.push_back(torch::full({1}, interrupt_requested() ? 1.0 : 0.0,
                                torch::dtype(torch::kFloat64).device(loss_value.device())));
    if (out.sums.defined()) parts.push_back(out.sums.detach().to(loss_value.device(), torch::kFloat64).flatten());
    std::vector<torch::Tensor> reduced{torch::cat(parts)};
    torch::Tensor loss = out.loss;
    if (world > 1) {
      group->all_reduce_sum(reduced);
      // The mean over the global batch: this rank's mean × its share of the global weight;
      // averaging the gradients over ranks (÷ world) then gives the global mean's gradient.
      loss = loss * (reduced[0][1].to(loss.dtype()).reciprocal() * (out.weight * world));
    }
    loss.backward();
    if (world > 1) group->average_gradients(optimizer.parameters());
    const double learning_rate =
        warmup_cosine_lr(step, total_steps, options.warmup_steps, options.learning_rate, options.final_lr_fraction);
    optimizer.step(learning_rate);
    const torch::Tensor sums =
        out.sums.defined() ? reduced[0].narrow(0, 3 + metric_count, reduced[0].size(0) - 3 - metric_count) : torch::Tensor();
    const int64_t steps_done = step + 1;
    stage.after_update(steps_done, sums);

    // Read after the update was queued; a step whose loss is not finite is never saved (its
    // update is garbage, and the run stops).
    const torch::Tensor totals = reduced[0].narrow(0, 0, 3 + metric_count).to(torch::kCPU);
    const auto values = totals.accessor<double, 1>();
    const double total_weight = values[1];
    const double step_loss = values[0] / total_weight;
    if (!std::isfinite(step_loss))
      throw_diverged(name, steps_done, describe_non_finite_loss(step_loss), last_checkpoint, state_path,
                     options.learning_rate);
    window_metrics.resize(static_cast<size_t>(metric_count), 0.0);
    for (int64_t i = 0; i < metric_count; ++i) window_metrics[static_cast<size_t>(i)] += values[2 + i] / total_weight;
    window_loss += step_loss;
    ++window_steps;
    // An interrupt during the last step changes nothing: the run is complete.
    const bool interrupted = values[2 + metric_count] > 0 && steps_done < total_steps;
    result.steps_done = steps_done;

    if (steps_done % options.log_every == 0 || steps_done == total_steps) {
      const double window_seconds = std::max(1e-9, seconds_since(window_started));
      WindowSummary summary;
      summary.steps_done = steps_done;
      summary.total_steps = total_steps;
      summary.mean_loss = window_loss / static_cast<double>(window_steps);
      for (double sum : window_metrics) summary.mean_metrics.push_back(sum / static_cast<double>(window_steps));
      summary.learning_rate = learning_rate;
      summary.items_per_second = static_cast<double>(window_steps * global_batch) / window_seconds;
      summary.eta_seconds = window_seconds / static_cast<double>(window_steps) * static_cast<double>(total_steps - steps_done);
      summary.elapsed_seconds = seconds_since(started);
      if (first_window) result.first_loss = summary.mean_loss;
      first_window = false;
      result.last_loss = summary.mean_loss;
      result.last_metrics = summary.mean_metrics;
      if (main) {
        if (!options.quiet)
          print_stderr("{} step {}/{}{} | {} | lr {:.2e} | {:.0f} img/s | eta {}\n", name, steps_done, total_steps,
                       stage.step_note(summary), stage.progress(summary), learning_rate, summary.items_per_second,
                       format_duration(summary.eta_seconds));
        Json record = Json::object();
        record["step"] = steps_done;
        stage.record(summary, record);
        record["learning_rate"] = learning_rate;
        record["images_per_second"] = summary.items_per_second;
        record["elapsed_seconds"] = summary.elapsed_seconds;
        metrics->write(record);
      }
      window_loss = 0;
      window_metrics.assign(window_metrics.size(), 0.0);
      window_steps = 0;
      window_started = std::chrono::steady_clock::now();
    }

    const bool stopping = options.stop_after >= 0 && steps_done - start_step >= options.stop_after;
    if (steps_done % options.checkpoint_every == 0 || steps_done == total_steps || stopping || interrupted)
      save_checkpoint(steps_done);
    if (interrupted) {
      result.interrupted = true;
      if (talk) print_stderr("interrupted: checkpoint saved at step {} ({})\n", steps_done, state_path);
      break;
    }
    if (stopping) {
      result.stopped_early = steps_done < total_steps;
      break;
    }
  }
  result.seconds = seconds_since(started);
  // No rank leaves before rank 0's last checkpoint is on disk: a launcher that sees one rank
  // exit may end the others.
  if (world > 1 && start_step < total_steps) group->barrier();
  if (main && !result.interrupted && !result.stopped_early)
    if (std::optional<Json> record = stage.after_run(result)) metrics->write(*record);
  if (start_step >= total_steps) {
    // Nothing to do; an interrupt that came meanwhile changes nothing either.
    if (talk)
      print_stderr("nothing to do: the checkpoint is already at step {} ({})\n", start_step, stage.more_steps_hint());
  }
  return result;
}

}  // namespace maskgit
