// maskgit-train: trains one stage of a model directory.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "cli/common.h"
#include "cli/options.h"
#include "common/console.h"
#include "common/error.h"
#include "io/atomic_file.h"
#include "model/model_dir.h"
#include "training/classifier_trainer.h"
#include "training/distributed.h"
#include "training/interrupt.h"
#include "training/launcher.h"
#include "training/run_guard.h"
#include "training/tokenizer_trainer.h"
#include "training/transformer_trainer.h"

namespace {

using namespace maskgit;

// Flags every stage shares; a stage's own defaults apply where a flag is not given.
struct CommonTrainingFlags {
  DatasetSpec data;
  std::string model_dir;
  int64_t steps = 0, batch_size = 0, warmup = -1, checkpoint_every = 0, log_every = 0, stop_after = -1;
  double learning_rate = 0, weight_decay = -1;  // -1: the stage's own
  uint64_t seed = 1;
  std::string metrics;
  bool resume = false, overwrite = false, quiet = false;
  // Whether --steps (or --epochs), --lr and --warmup were given: on resume, those not given come
  // from the checkpoint's schedule.
  bool steps_given = false, learning_rate_given = false, warmup_given = false;
  // Whether --seed and --batch-size were given: on resume, a value other than the checkpoint's
  // is refused.
  bool seed_given = false, batch_size_given = false;
  std::shared_ptr<DataParallelGroup> group;  // this process's group (of one when alone)

  template <typename Options>
  void apply_to(Options& options) const {
    options.data = data;
    if (steps > 0) options.steps = steps;
    if (batch_size > 0) options.batch_size = batch_size;
    if (learning_rate > 0) options.learning_rate = learning_rate;
    if (weight_decay >= 0) options.weight_decay = weight_decay;
    if (warmup >= 0) options.warmup_steps = warmup;
    if (checkpoint_every > 0) options.checkpoint_every = checkpoint_every;
    if (log_every > 0) options.log_every = log_every;
    options.stop_after = stop_after;
    options.seed = seed;
    options.metrics_path = metrics;
    options.resume = resume;
    options.overwrite = overwrite;
    options.quiet = quiet;
    options.group = group;
    options.steps_given = steps_given;
    options.learning_rate_given = learning_rate_given;
    options.warmup_given = warmup_given;
    options.seed_given = seed_given;
    options.batch_size_given = batch_size_given;
  }
};

template <typename Result>
void finish(const Result& result, const CommonTrainingFlags& flags) {
  const bool main = flags.group->is_main();
  if (result.interrupted) {
    const std::string message =
        fmt::format("interrupted at step {}; continue with --resume", result.steps_done);
    if (!main) throw AlreadyReported(ExitCode::interrupted, message);  // rank 0 says it
    throw Error(ExitCode::interrupted, message);
  }
  if (!flags.quiet && main)
    print_stderr("done: step {}, {:.1f} s this run, model in {}\n", result.steps_done, result.seconds, flags.model_dir);
}

// Runs a configuration's validate() on values that came from flags: its "section.field: why"
// becomes "--flag: why" (exit 2), so the message names what the user typed.
void validate_from_flags(const std::function<void()>& validate, const std::string& section,
                         const std::vector<std::pair<std::string, std::string>>& flags) {
  try {
    validate();
  } catch (const std::exception& e) {
    std::string message = e.what();
    for (const auto& [field, flag] : flags) {
      const std::string prefix = section + field + ":";
      if (message.rfind(prefix, 0) == 0) message = flag + message.substr(prefix.size() - 1);
    }
    throw_usage(message);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Train a stage of a MaskGIT model on an IDX dataset or an image folder:\n"
               "  tokenizer    the VQ autoencoder (images -> token grids)\n"
               "  transformer  the bidirectional transformer over token grids (needs the tokenizer)\n"
               "  classifier   the evaluation classifier used by maskgit-eval (its own directory)\n"
               "Checkpoints atomically; --resume continues after a kill; Ctrl-C saves and exits (status 130);\n"
               "a non-finite loss or weights stop the run (status 1) and keep the last checkpoint.\n"
               "Data-parallel: --nproc N local ranks, or one rank of a torchrun launch (RANK, WORLD_SIZE, ...\n"
               "set); --batch-size is per rank.",
               "maskgit-train"};
  std::string stage;
  CommonTrainingFlags flags;
  flags.data.path = kFashionMnistDir;
  TokenizerTrainOptions tokenizer;
  TransformerTrainOptions transformer;
  ClassifierTrainOptions classifier;
  std::string evaluation_split;
  RuntimeOptions runtime;
  std::string channel_multipliers = "1,2,4";
  int nproc = 1;
  std::string dist_backend = "auto";
  double dist_timeout = 600;

  ToolOptions cli(app, Tool::train);
  cli.add_no_default("stage", stage)->required();
  cli.add_no_default("model_output", flags.model_dir)->required();
  cli.add("data", flags.data.path);
  cli.add("split", flags.data.split);
  cli.add("limit", flags.data.limit);

  // The flags of some stages only, refused with another (they would do nothing there).
  std::vector<std::pair<std::vector<std::string>, const CLI::Option*>> stage_only;
  const auto only = [&](std::vector<std::string> stages, const CLI::Option* option) {
    stage_only.emplace_back(std::move(stages), option);
    return option;
  };
  // Settings a checkpoint records (the architecture): given with --resume they must be the
  // checkpoint's (the engine compares; a different value would silently do nothing).
  struct CheckpointSetting {
    std::string stage;
    const CLI::Option* option;
    std::string key, field;
    std::function<Json()> value;  // read once the flags are parsed
  };
  std::vector<CheckpointSetting> checkpoint_settings;
  const auto recorded_in = [&](const std::string& stage_name, const CLI::Option* option, const std::string& key,
                               const std::string& field, std::function<Json()> value) {
    checkpoint_settings.push_back({stage_name, option, key, field, std::move(value)});
    return option;
  };
  // Also the classifier's: its input channels.
  const CLI::Option* channels_flag = only({"tokenizer", "classifier"}, cli.add("channels", tokenizer.config.channels));
  const auto channels_value = [&] { return Json(tokenizer.config.channels); };
  recorded_in("tokenizer", channels_flag, "tokenizer_config", "channels", channels_value);
  recorded_in("classifier", channels_flag, "classifier_config", "channels", channels_value);
  std::vector<const CLI::Option*> tokenizer_architecture_flags = {channels_flag};
  const auto tokenizer_architecture = [&](CLI::Option* option, const std::string& field, std::function<Json()> value) {
    only({"tokenizer"}, recorded_in("tokenizer", option, "tokenizer_config", field, std::move(value)));
    tokenizer_architecture_flags.push_back(option);
  };
  TokenizerConfig& architecture = tokenizer.config;
  tokenizer_architecture(cli.add("filters", architecture.filters), "filters", [&] { return Json(architecture.filters); });
  tokenizer_architecture(cli.add("channel_mult", channel_multipliers), "channel_multipliers",
                         [&] { return Json(architecture.channel_multipliers); });
  tokenizer_architecture(cli.add("res_blocks", architecture.num_res_blocks), "num_res_blocks",
                         [&] { return Json(architecture.num_res_blocks); });
  tokenizer_architecture(cli.add("codebook_size", architecture.codebook_size), "codebook_size",
                         [&] { return Json(architecture.codebook_size); });
  tokenizer_architecture(cli.add("embedding_dim", architecture.embedding_dim), "embedding_dim",
                         [&] { return Json(architecture.embedding_dim); });
  tokenizer_architecture(cli.add("norm_groups", architecture.norm_groups), "norm_groups",
                         [&] { return Json(architecture.norm_groups); });
  tokenizer_architecture(cli.add_flag("release_shortcut", architecture.release_shortcut), "release_shortcut",
                         [&] { return Json(architecture.release_shortcut); });
  const CLI::Option* dead_code_window_flag =
      only({"tokenizer"}, recorded_in("tokenizer", cli.add("dead_code_window", tokenizer.dead_code_window),
                                      "tokenizer_losses", "dead_code_window",
                                      [&] { return Json(tokenizer.dead_code_window); }));
  only({"tokenizer"}, cli.add_no_default("perceptual_model", tokenizer.perceptual_model));
  const CLI::Option* commitment_flag = cli.add("commitment", tokenizer.commitment_weight);
  // The loss settings a checkpoint records (refused with --resume: the checkpoint decides), and
  // the adversarial ones (refused without --adversarial-weight, which they would not affect).
  const std::vector<std::pair<const char*, const CLI::Option*>> recorded = {
      {"--perceptual-weight", cli.add("perceptual_weight", tokenizer.perceptual_weight)},
      {"--adversarial-weight", cli.add("adversarial_weight", tokenizer.adversarial_weight)},
      {"--adversarial-start", cli.add("adversarial_start", tokenizer.adversarial_start)},
      {"--discriminator-lr", cli.add("discriminator_lr", tokenizer.discriminator_lr)},
      {"--r1-weight", cli.add("r1_weight", tokenizer.r1_weight)},
      {"--discriminator-filters", cli.add("discriminator_filters", tokenizer.discriminator.filters)},
      {"--discriminator-layers", cli.add("discriminator_layers", tokenizer.discriminator.layers)},
      {"--decoder-only", cli.add_flag("decoder_only", tokenizer.decoder_only)},
      {"--commitment", commitment_flag},
  };
  for (const auto& [flag, option] : recorded) only({"tokenizer"}, option);
  // Both weight stages: the starting weights of a new run.
  std::string init_from;
  const CLI::Option* init_from_flag = only({"tokenizer", "transformer"}, cli.add_no_default("init_from", init_from));

  // Also the classifier's: its dropout before the logits.
  const CLI::Option* dropout_flag =
      only({"transformer", "classifier"}, cli.add("dropout", transformer.config.dropout));
  const auto dropout_value = [&] { return Json(transformer.config.dropout); };
  recorded_in("transformer", dropout_flag, "transformer_config", "dropout", dropout_value);
  recorded_in("classifier", dropout_flag, "classifier_config", "dropout", dropout_value);
  // The transformer's architecture (from the starting model with --init-from).
  TransformerConfig& layout = transformer.config;
  const std::vector<const CLI::Option*> transformer_architecture = {
      recorded_in("transformer", cli.add("layers", layout.num_layers), "transformer_config", "num_layers",
                  [&] { return Json(layout.num_layers); }),
      recorded_in("transformer", cli.add("hidden", layout.hidden_size), "transformer_config", "hidden_size",
                  [&] { return Json(layout.hidden_size); }),
      recorded_in("transformer", cli.add("heads", layout.num_heads), "transformer_config", "num_heads",
                  [&] { return Json(layout.num_heads); }),
      recorded_in("transformer", cli.add("mlp_dim", layout.mlp_dim), "transformer_config", "mlp_dim",
                  [&] { return Json(layout.mlp_dim); })};
  for (const CLI::Option* option : transformer_architecture) only({"transformer"}, option);
  // Its loss settings and EMA decay (the checkpoint's on resume).
  for (const CLI::Option* option :
       {recorded_in("transformer", cli.add("class_dropout", transformer.class_dropout), "transformer_training",
                    "class_dropout", [&] { return Json(transformer.class_dropout); }),
        recorded_in("transformer", cli.add("label_smoothing", transformer.label_smoothing), "transformer_training",
                    "label_smoothing", [&] { return Json(transformer.label_smoothing); }),
        recorded_in("transformer", cli.add("ema", transformer.ema_decay), "transformer_training", "ema",
                    [&] { return Json(transformer.ema_decay); })})
    only({"transformer"}, option);

  CLI::Option* epochs_flag = cli.add("epochs", classifier.epochs);
  for (const CLI::Option* option :
       std::initializer_list<const CLI::Option*>{epochs_flag, cli.add_no_default("eval_split", evaluation_split),
        recorded_in("classifier", cli.add("width_multiplier", classifier.config.width_multiplier), "classifier_config",
                    "width_multiplier", [&] { return Json(classifier.config.width_multiplier); }),
        cli.add_flag("augment", classifier.augment)})
    only({"classifier"}, option);

  // Defaults that differ per stage are the trainers' own (the help says which).
  const CLI::Option* steps_flag = cli.add_no_default("train_steps", flags.steps);
  const CLI::Option* batch_size_flag = cli.add_no_default("batch_size", flags.batch_size);
  const CLI::Option* lr_flag = cli.add_no_default("lr", flags.learning_rate);
  cli.add_no_default("weight_decay", flags.weight_decay);
  const CLI::Option* warmup_flag = cli.add_no_default("warmup", flags.warmup);
  const CLI::Option* seed_flag = cli.add("seed", flags.seed);
  cli.add_no_default("checkpoint_every", flags.checkpoint_every);
  cli.add_no_default("log_every", flags.log_every);
  cli.add_no_default("metrics", flags.metrics);
  cli.add("stop_after", flags.stop_after);
  auto* resume_flag = cli.add_flag("resume", flags.resume);
  cli.add_flag("overwrite", flags.overwrite)->excludes(resume_flag);
  add_runtime_options(cli, runtime);
  cli.add("nproc", nproc);
  const CLI::Option* dist_backend_flag = cli.add("dist_backend", dist_backend);
  const CLI::Option* dist_timeout_flag = cli.add("dist_timeout", dist_timeout);

  return run_tool(cli, argc, argv, [&] {
    flags.quiet = verbosity() == Verbosity::quiet;
    flags.steps_given = steps_flag->count() > 0 || epochs_flag->count() > 0;
    flags.learning_rate_given = lr_flag->count() > 0;
    flags.warmup_given = warmup_flag->count() > 0;
    flags.seed_given = seed_flag->count() > 0;
    if (flags.resume && flags.seed_given)
      for (const auto& [flag, seed] : drawn_random_seeds())
        if (flag == seed_flag->get_name())
          throw_usage(fmt::format("{}: -1 draws a new seed, but a resumed run keeps its checkpoint's (leave it out)",
                                  flag));
    flags.batch_size_given = batch_size_flag->count() > 0;
    const LaunchEnvironment launch = read_launch_environment();
    // A rank of our own launcher has its variables set by it; MASKGIT_LOCAL_LAUNCHER alone (left
    // in an environment) changes nothing.
    const bool our_rank = started_by_local_launcher() && launch.launched && launch.world_size == nproc;
    const bool launcher = nproc > 1 && !our_rank;
    if (launcher && launch.launched)
      throw_usage(fmt::format("--nproc: this process is already rank {} of {} started by a launcher (WORLD_SIZE is "
                              "set); give the number of processes to the launcher only",
                              launch.rank, launch.world_size));
    // The stage's flags, checked before anything starts (by every rank alike: rank 0 reports).
    const auto check_flags = [&] {
      for (const auto& [stages, option] : stage_only)
        if (option->count() > 0 && std::find(stages.begin(), stages.end(), stage) == stages.end())
          throw_usage(fmt::format("{}: a flag of the {} stage{}; this run trains the {} stage, where it would do nothing",
                                  option->get_name(), fmt::join(stages, " and "), stages.size() > 1 ? "s" : "", stage));
      if (epochs_flag->count() > 0 && steps_flag->count() > 0)
        throw_usage("--epochs: the run's length is given by --steps already (give one of the two)");
      // The collectives' settings mean something only to a run of several processes.
      if (nproc <= 1 && !launch.launched)
        for (const CLI::Option* option : {dist_backend_flag, dist_timeout_flag})
          if (option->count() > 0)
            throw_usage(fmt::format("{}: only for a multi-process run (--nproc above 1, or ranks started by a "
                                    "launcher that sets WORLD_SIZE)",
                                    option->get_name()));
      if (init_from_flag->count() > 0 && flags.resume)
        throw_usage("--init-from: a resumed run continues from its checkpoint's weights (start a new run to change them)");
      if (init_from_flag->count() > 0)
        for (const CLI::Option* option : stage == "transformer" ? transformer_architecture : tokenizer_architecture_flags)
          if (option->count() > 0)
            throw_usage(fmt::format("{}: the architecture comes from --init-from's {}", option->get_name(), stage));
      if (stage == "tokenizer") {
        tokenizer.init_from = init_from;
        try {
          tokenizer.config.channel_multipliers = parse_int_list(channel_multipliers);
        } catch (const std::exception& e) {
          throw_usage(fmt::format("--channel-mult: {}", e.what()));
        }
        for (const auto& [flag, option] : recorded) {
          if (option->count() == 0) continue;
          if (flags.resume)
            throw_usage(fmt::format("{}: a resumed run takes its loss settings from the checkpoint (start a new run "
                                    "to change them)",
                                    flag));
          const std::string name = flag;
          if (tokenizer.adversarial_weight == 0 &&
              (name == "--adversarial-start" || name == "--discriminator-lr" || name == "--r1-weight" ||
               name.rfind("--discriminator-", 0) == 0))
            throw_usage(fmt::format("{}: only with --adversarial-weight above 0 (there is no discriminator otherwise)",
                                    flag));
        }
        if (!flags.resume && recorded.front().second->count() > 0 && tokenizer.perceptual_model.empty())
          throw_usage("--perceptual-weight: needs --perceptual-model (the network the loss goes through)");
        if (tokenizer.decoder_only && tokenizer.init_from.empty())
          throw_usage("--decoder-only: needs --init-from (a trained tokenizer whose decoder is fine-tuned)");
        if (tokenizer.decoder_only && dead_code_window_flag->count() > 0)
          throw_usage("--dead-code-window: not with --decoder-only (the codebook is frozen: no code is restarted)");
        if (!flags.resume)  // resumed: the checkpoint's architecture (given flags are compared with it)
          validate_from_flags([&] { tokenizer.config.validate(); }, "tokenizer.",
                            {{"channels", "--channels"}, {"filters", "--filters"}, {"channel_multipliers", "--channel-mult"},
                             {"num_res_blocks", "--res-blocks"}, {"codebook_size", "--codebook-size"},
                             {"embedding_dim", "--embedding-dim"}, {"norm_groups", "--norm-groups"}});
      } else if (stage == "transformer") {
        transformer.init_from = init_from;
        if (!flags.resume)
          validate_from_flags([&] { transformer.config.validate(); }, "transformer.",
                            {{"num_layers", "--layers"}, {"hidden_size", "--hidden"}, {"num_heads", "--heads"},
                             {"mlp_dim", "--mlp-dim"}, {"dropout", "--dropout"}});
      }
    };
    try {
      check_flags();
    } catch (const Error& e) {
      if (launch.launched && launch.rank != 0) throw AlreadyReported(e.code(), e.what());
      throw;
    }
    // Every destination the run will write, checked once the flags are known good and before
    // any data is read (folders are made by the trainer, after its inputs are checked): the
    // model's files, the checkpoint and the metrics log (all written by write_file_atomic, so
    // the same rules apply). Rank 0 alone writes, so rank 0 alone checks.
    const auto check_outputs = [&] {
      const std::string out = flags.model_dir;
      const std::string weights = stage == "classifier" ? "classifier.safetensors" : stage + ".safetensors";
      if (!flags.metrics.empty()) prepare_output_file(flags.metrics, "--metrics", false);
      prepare_output_file(out + "/config.json", "--out", false);
      // A directory of the other kind (a MaskGIT model vs a classifier) is never written over:
      // its config.json would be replaced by this stage's.
      const std::string want = stage == "classifier" ? "maskgit-cpp-classifier" : "maskgit-cpp";
      if (const std::string format = directory_format(out); !format.empty() && format != want)
        throw Error(ExitCode::io_error,
                    fmt::format("--out: {} holds {} (config.json format \"{}\"), not a {}: the {} stage would "
                                "replace its config.json; train into another directory",
                                out, describe_directory_format(format), format,
                                stage == "classifier" ? "classifier" : "MaskGIT model", stage));
      prepare_output_file(out + "/" + weights, "--out", false);
      prepare_output_file(out + "/train-state/" + stage + ".safetensors", "--out", false);
      if (flags.metrics.empty()) prepare_output_file(out + "/train-state/" + stage + "-metrics.jsonl", "--out", false);
    };
    // The recorded settings given beside --resume, for the engine to compare with the checkpoint.
    const auto resume_checks = [&] {
      std::vector<TrainingRunOptions::RecordedSetting> checks;
      if (flags.resume)
        for (const CheckpointSetting& setting : checkpoint_settings)
          if (setting.stage == stage && setting.option->count() > 0)
            checks.push_back({setting.key, setting.field, setting.value()});
      return checks;
    };
    const auto train = [&](const torch::Device& device) {
      flags.group->run_on_main("checking the outputs", check_outputs);
      if (stage == "tokenizer") {
        flags.apply_to(tokenizer);
        tokenizer.resume_checks = resume_checks();
        tokenizer.model_dir = flags.model_dir;
        tokenizer.device = device;
        // A transformer beside a new tokenizer was trained on the former one's codes (a
        // decoder-only fine-tune keeps the codes): said once the tokenizer is trained.
        const bool kept_transformer = !tokenizer.decoder_only && flags.group->is_main() &&
                                      file_exists(flags.model_dir + "/" + kTransformerWeightsFile);
        const auto result = train_tokenizer(tokenizer);
        if (kept_transformer && !result.interrupted)
          print_note("{}: {} was trained on the former tokenizer's codes and no longer fits; retrain it "
                     "(maskgit-train --stage transformer --overwrite)\n",
                     flags.model_dir, kTransformerWeightsFile);
        finish(result, flags);
      } else if (stage == "classifier") {
        flags.apply_to(classifier);
        classifier.resume_checks = resume_checks();
        classifier.out_dir = flags.model_dir;
        if (channels_flag->count() > 0) classifier.config.channels = tokenizer.config.channels;
        if (dropout_flag->count() > 0) classifier.config.dropout = transformer.config.dropout;
        if (!evaluation_split.empty()) {
          classifier.evaluation.path = flags.data.path;
          classifier.evaluation.split = evaluation_split;
        }
        classifier.device = device;
        const ClassifierTrainResult result = train_classifier(classifier);
        if (!result.interrupted && result.evaluation_accuracy >= 0 && flags.group->is_main())
          print_stderr("accuracy on {} ({}): {:.2f}% of {} images\n", flags.data.path, evaluation_split,
                       100.0 * result.evaluation_accuracy, result.evaluation_images);
        finish(result, flags);
      } else {
        flags.apply_to(transformer);
        transformer.resume_checks = resume_checks();
        transformer.dropout_from_options = dropout_flag->count() > 0;
        transformer.model_dir = flags.model_dir;
        transformer.config.attention_dropout = transformer.config.dropout;
        transformer.device = device;
        // The decoding defaults a model recommends were measured on its former transformer:
        // said once the new one is trained (after the trainer's own refusals).
        bool kept_sampling = false;
        if (!flags.resume && flags.group->is_main() && directory_format(flags.model_dir) == "maskgit-cpp") {
          try {
            const ModelConfig model = read_model_config(flags.model_dir);
            kept_sampling = model.sampling.has_value() && model.transformer.has_value();
          } catch (const std::exception&) {
            // the trainer reports a bad config.json itself
          }
        }
        const TransformerTrainResult result = train_transformer(transformer);
        if (kept_sampling && !result.interrupted)
          print_note("{}: config.json keeps its \"sampling\" section, measured with the former transformer; "
                     "re-measure it for the new one (scripts/sweep_sampling.sh)\n",
                     flags.model_dir);
        finish(result, flags);
      }
    };
    if (launcher) {
      // N ranks of this same command (each checks its flags again; rank 0 its outputs).
      check_outputs();
      const int status = run_local_ranks(nproc, argc, argv, runtime.threads > 0, flags.quiet);
      if (status != 0) throw AlreadyReported(static_cast<ExitCode>(status), fmt::format("a rank exited with status {}", status));
      return;
    }

    open_standard_streams();
    // Settings every rank meets alike (the device, OMP_NUM_THREADS, the backend): rank 0 reports.
    const auto alike = [&](const auto& work) {
      try {
        return work();
      } catch (const InvalidArgument& e) {
        if (launch.launched && launch.rank != 0) throw AlreadyReported(e.code(), e.what());
        throw;
      }
    };
    torch::Device device = alike([&] { return apply_runtime_options(runtime); });
    if (launch.launched && launch.world_size > 1) {
      // One GPU per rank: a plain "cuda" means the rank's local GPU.
      if (device.is_cuda() && !device.has_index())
        device = torch::Device(torch::kCUDA, static_cast<torch::DeviceIndex>(launch.local_rank));
      DistributedOptions distributed;
      distributed.backend = dist_backend;
      distributed.timeout = std::chrono::milliseconds(static_cast<int64_t>(dist_timeout * 1000.0));
      flags.group = alike([&] { return std::shared_ptr<DataParallelGroup>(DataParallelGroup::connect(launch, device, distributed)); });
      if (!flags.group->is_main()) flags.quiet = true;  // rank 0 reports for all
    } else {
      flags.group = DataParallelGroup::single();
    }
    install_interrupt_handlers(launch.launched);
    try {
      train(device);
    } catch (const AlreadyReported&) {
      throw;
    } catch (const Error& e) {
      // Rank 0 reports what every rank meets alike (the engine marks those AlreadyReported on
      // the other ranks; an interrupt and a diverged run too); the other ranks print their own
      // failures (their data, a lost peer), naming themselves.
      if (flags.group->is_main()) throw;
      if (e.code() == ExitCode::interrupted || dynamic_cast<const TrainingDiverged*>(&e) != nullptr)
        throw AlreadyReported(e.code(), e.what());
      const std::string who = fmt::format("rank {} of {}", flags.group->rank(), flags.group->world_size());
      if (const auto* invalid = dynamic_cast<const InvalidArgument*>(&e)) {
        if (invalid->message().rfind(who, 0) == 0) throw;  // it names its rank already
        throw InvalidArgument(invalid->argument(), who + ": " + invalid->message(), invalid->code());
      }
      if (std::string(e.what()).rfind(who, 0) == 0) throw;  // it names its rank already
      throw Error(e.code(), who + ": " + e.what());
    }
  });
}

