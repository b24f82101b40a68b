// maskgit-train: trains one stage of a model directory.
#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "cli/common.h"
#include "common/console.h"
#include "common/error.h"
#include "io/atomic_file.h"
#include "training/classifier_trainer.h"
#include "training/interrupt.h"
#include "training/tokenizer_trainer.h"
#include "training/transformer_trainer.h"

namespace {

using namespace maskgit;

// Flags every stage shares; a stage's own defaults apply where a flag is not given.
struct CommonTrainingFlags {
  DatasetSpec data;
  std::string model_dir;
  int64_t steps = 0, batch_size = 0, warmup = -1, checkpoint_every = 0, log_every = 0, stop_after = -1;
  double learning_rate = 0;
  uint64_t seed = 1;
  std::string metrics;
  bool resume = false, overwrite = false, quiet = false;

  template <typename Options>
  void apply_to(Options& options) const {
    options.data = data;
    if (steps > 0) options.steps = steps;
    if (batch_size > 0) options.batch_size = batch_size;
    if (learning_rate > 0) options.learning_rate = learning_rate;
    if (warmup >= 0) options.warmup_steps = warmup;
    if (checkpoint_every > 0) options.checkpoint_every = checkpoint_every;
    if (log_every > 0) options.log_every = log_every;
    options.stop_after = stop_after;
    options.seed = seed;
    options.metrics_path = metrics;
    options.resume = resume;
    options.overwrite = overwrite;
    options.quiet = quiet;
  }
};

template <typename Result>
void finish(const Result& result, const CommonTrainingFlags& flags) {
  if (result.interrupted)
    throw Error(ExitCode::interrupted, fmt::format("interrupted at step {}; continue with --resume", result.steps_done));
  if (!flags.quiet)
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
               "a non-finite loss or weights stop the run (status 1) and keep the last checkpoint.",
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

  app.add_option("--stage", stage, "Stage to train: tokenizer, transformer or classifier")->required()
      ->check(CLI::IsMember({"tokenizer", "transformer", "classifier"}));
  app.add_option("-o,--out", flags.model_dir, "Model directory (config.json, weights, train-state/)")->required();
  auto* data = app.add_option_group("Data");
  data->add_option("-d,--data", flags.data.path,
                   "IDX directory (Fashion-MNIST layout), an idx3 images file, or an image folder with one sub-folder per class")
      ->capture_default_str();
  data->add_option("--split", flags.data.split, "IDX split to read: train or t10k")->capture_default_str()
      ->check(CLI::IsMember({"train", "t10k"}));
  data->add_option("--limit", flags.data.limit, "Use only the first N images (-1 = all)")->capture_default_str()->check(image_limit());

  auto* tokenizer_group = app.add_option_group("Tokenizer architecture (--stage tokenizer; ignored with --resume)");
  tokenizer_group->add_option("--channels", tokenizer.config.channels, "Image channels: 1 or 3")->capture_default_str();
  tokenizer_group->add_option("--filters", tokenizer.config.filters, "Base width F")->capture_default_str();
  tokenizer_group->add_option("--channel-mult", channel_multipliers, "Width multipliers per level; levels-1 halvings")
      ->capture_default_str();
  tokenizer_group->add_option("--res-blocks", tokenizer.config.num_res_blocks, "ResBlocks per level")->capture_default_str();
  tokenizer_group->add_option("--codebook-size", tokenizer.config.codebook_size, "Codebook entries K")->capture_default_str();
  tokenizer_group->add_option("--embedding-dim", tokenizer.config.embedding_dim, "Code dimension D")->capture_default_str();
  tokenizer_group->add_option("--norm-groups", tokenizer.config.norm_groups, "GroupNorm groups")->capture_default_str();
  tokenizer_group->add_flag("--release-shortcut", tokenizer.config.release_shortcut,
                            "Reproduce the release's width-changing ResBlock (h + Conv1x1(h))");
  tokenizer_group->add_option("--commitment", tokenizer.commitment_weight, "Commitment loss weight")->capture_default_str()->check(finite_range(0, 1e3));
  tokenizer_group->add_option("--dead-code-window", tokenizer.dead_code_window,
                              "Restart codes unused over this many steps on encoder outputs (0 = never)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);

  auto* transformer_group = app.add_option_group("Transformer (--stage transformer; architecture ignored with --resume)");
  transformer_group->add_option("--layers", transformer.config.num_layers, "Transformer layers")->capture_default_str();
  transformer_group->add_option("--hidden", transformer.config.hidden_size, "Hidden size")->capture_default_str();
  transformer_group->add_option("--heads", transformer.config.num_heads, "Attention heads")->capture_default_str();
  transformer_group->add_option("--mlp-dim", transformer.config.mlp_dim, "MLP width")->capture_default_str();
  transformer_group->add_option("--dropout", transformer.config.dropout, "Dropout (also on attention weights)")
      ->capture_default_str()->check(finite_range(0.0, 0.99));
  transformer_group->add_option("--class-dropout", transformer.class_dropout,
                                "Probability of training on the no-class token (enables guidance and unconditional decoding)")
      ->capture_default_str()->check(finite_range(0.0, 1.0));
  transformer_group->add_option("--label-smoothing", transformer.label_smoothing, "Label smoothing of the masked-token loss")
      ->capture_default_str()->check(finite_range(0.0, 0.99));
  transformer_group->add_option("--weight-decay", transformer.weight_decay, "AdamW decoupled weight decay")
      ->capture_default_str()->check(finite_range(0, 1e3));
  transformer_group->add_option("--ema", transformer.ema_decay, "EMA decay of the shipped weights (0 = off, e.g. 0.999)")
      ->capture_default_str()->check(finite_range(0.0, 0.999999));

  auto* classifier_group = app.add_option_group("Classifier (--stage classifier)");
  classifier_group->add_option("--epochs", classifier.epochs, "Epochs (when --steps is not given)")->capture_default_str()
      ->check(CLI::PositiveNumber);
  classifier_group->add_option("--eval-split", evaluation_split, "After training, report accuracy on this split of --data (t10k)")
      ->check(CLI::IsMember({"train", "t10k"}));
  classifier_group->add_option("--width-multiplier", classifier.config.width_multiplier, "Channel width multiplier")
      ->capture_default_str()->check(finite_range(0, 64, /*exclude_low=*/true));
  classifier_group->add_flag("--augment", classifier.augment, "Random 2-pixel shifts and horizontal flips");

  auto* training = app.add_option_group("Training (defaults differ per stage: tokenizer / transformer)");
  training->add_option("--steps", flags.steps, "Total optimisation steps (6000 / 10000)")->check(CLI::PositiveNumber);
  training->add_option("-b,--batch-size", flags.batch_size, "Images per step (128 / 256)")->check(CLI::PositiveNumber);
  // At most FLT_MAX × (1 − β1) with β1 = 0.9, so that Adam's largest step fits in float32 (the
  // trainers re-check it with their own β1 and weight decay).
  training->add_option("--lr", flags.learning_rate, "Peak learning rate (1e-3 / 1e-3)")
      ->check(finite_range(0, 3.4e37, /*exclude_low=*/true));
  training->add_option("--warmup", flags.warmup, "Linear warm-up steps, then cosine decay (200 / 500)")->check(CLI::NonNegativeNumber);
  training->add_option("-s,--seed", flags.seed, "Seed for initialisation, data order and every random choice")
      ->capture_default_str()->check(seed_value());
  training->add_option("--checkpoint-every", flags.checkpoint_every, "Save a checkpoint every N steps (500)")->check(CLI::PositiveNumber);
  training->add_option("--log-every", flags.log_every, "Progress line and metrics record every N steps (50)")->check(CLI::PositiveNumber);
  training->add_option("--metrics", flags.metrics, "Metrics log, JSON lines (default: OUT/train-state/<stage>-metrics.jsonl)");
  training->add_option("--stop-after", flags.stop_after,
                       "Stop with a checkpoint after N steps of this run (-1 = run to --steps); --resume continues")
      ->capture_default_str();
  auto* resume_flag = training->add_flag("--resume", flags.resume, "Continue from OUT/train-state/<stage>.safetensors");
  training->add_flag("--overwrite", flags.overwrite,
                     "Start over although OUT holds this stage's checkpoint or model (both are replaced; "
                     "without it, such a directory is refused)")
      ->excludes(resume_flag);
  training->add_flag("-q,--quiet", flags.quiet, "No progress on stderr");
  add_runtime_options(app, runtime);

  return run_tool(app, argc, argv, [&] {
    const torch::Device device = apply_runtime_options(runtime);
    install_interrupt_handlers();
    // Every destination the run will write, checked once the flags are known good and before
    // any data is read (folders are made by the trainer, after its inputs are checked): the model's files, the checkpoint and the metrics
    // log (all written by write_file_atomic, so the same rules apply).
    const auto prepare_outputs = [&] {
      const std::string out = flags.model_dir;
      const std::string weights = stage == "classifier" ? "classifier.safetensors" : stage + ".safetensors";
      if (!flags.metrics.empty()) prepare_output_file(flags.metrics, "--metrics", false);
      prepare_output_file(out + "/config.json", "--out", false);
      prepare_output_file(out + "/" + weights, "--out", false);
      prepare_output_file(out + "/train-state/" + stage + ".safetensors", "--out", false);
      if (flags.metrics.empty()) prepare_output_file(out + "/train-state/" + stage + "-metrics.jsonl", "--out", false);
    };
    if (stage == "tokenizer") {
      try {
        tokenizer.config.channel_multipliers = parse_int_list(channel_multipliers);
      } catch (const std::exception& e) {
        throw_usage(fmt::format("--channel-mult: {}", e.what()));
      }
      validate_from_flags([&] { tokenizer.config.validate(); }, "tokenizer.",
                          {{"channels", "--channels"}, {"filters", "--filters"}, {"channel_multipliers", "--channel-mult"},
                           {"num_res_blocks", "--res-blocks"}, {"codebook_size", "--codebook-size"},
                           {"embedding_dim", "--embedding-dim"}, {"norm_groups", "--norm-groups"}});
      prepare_outputs();
      flags.apply_to(tokenizer);
      tokenizer.model_dir = flags.model_dir;
      tokenizer.device = device;
      finish(train_tokenizer(tokenizer), flags);
    } else if (stage == "classifier") {
      prepare_outputs();
      flags.apply_to(classifier);
      classifier.out_dir = flags.model_dir;
      if (!evaluation_split.empty()) {
        classifier.evaluation.path = flags.data.path;
        classifier.evaluation.split = evaluation_split;
      }
      classifier.device = device;
      const ClassifierTrainResult result = train_classifier(classifier);
      if (!result.interrupted && result.evaluation_accuracy >= 0)
        print_stderr("accuracy on {} ({}): {:.2f}% of {} images\n", flags.data.path, evaluation_split,
                   100.0 * result.evaluation_accuracy, result.evaluation_images);
      finish(result, flags);
    } else {
      validate_from_flags([&] { transformer.config.validate(); }, "transformer.",
                          {{"num_layers", "--layers"}, {"hidden_size", "--hidden"}, {"num_heads", "--heads"},
                           {"mlp_dim", "--mlp-dim"}, {"dropout", "--dropout"}});
      prepare_outputs();
      flags.apply_to(transformer);
      transformer.model_dir = flags.model_dir;
      transformer.config.attention_dropout = transformer.config.dropout;
      transformer.device = device;
      finish(train_transformer(transformer), flags);
    }
  });
}
