// maskgit-train: trains one stage of a model directory.
#include <fmt/format.h>

#include "cli/common.h"
#include "common/error.h"
#include "training/interrupt.h"
#include "training/tokenizer_trainer.h"

int main(int argc, char** argv) {
  using namespace maskgit;
  CLI::App app{"Train a stage of a MaskGIT model (the VQ tokenizer) on an IDX dataset or an image folder.\n"
               "Checkpoints atomically; --resume continues after a kill; Ctrl-C saves and exits (status 130).",
               "maskgit-train"};
  std::string stage;
  TokenizerTrainOptions options;
  options.data.path = kFashionMnistDir;
  RuntimeOptions runtime;
  std::string channel_multipliers = "1,2,4";

  app.add_option("--stage", stage, "Stage to train: tokenizer")->required()->check(CLI::IsMember({"tokenizer"}));
  app.add_option("-o,--out", options.model_dir, "Model directory to write (config.json, weights, train-state/)")->required();
  auto* data = app.add_option_group("Data");
  data->add_option("-d,--data", options.data.path,
                   "IDX directory (Fashion-MNIST layout), an idx3 images file, or an image folder with one sub-folder per class")
      ->capture_default_str();
  data->add_option("--split", options.data.split, "IDX split to read: train or t10k")->capture_default_str()
      ->check(CLI::IsMember({"train", "t10k"}));
  data->add_option("--limit", options.data.limit, "Use only the first N images (-1 = all)")->capture_default_str();

  auto* architecture = app.add_option_group("Tokenizer architecture (ignored with --resume)");
  architecture->add_option("--channels", options.config.channels, "Image channels: 1 or 3")->capture_default_str();
  architecture->add_option("--filters", options.config.filters, "Base width F")->capture_default_str();
  architecture->add_option("--channel-mult", channel_multipliers, "Width multipliers per level; levels-1 halvings")
      ->capture_default_str();
  architecture->add_option("--res-blocks", options.config.num_res_blocks, "ResBlocks per level")->capture_default_str();
  architecture->add_option("--codebook-size", options.config.codebook_size, "Codebook entries K")->capture_default_str();
  architecture->add_option("--embedding-dim", options.config.embedding_dim, "Code dimension D")->capture_default_str();
  architecture->add_option("--norm-groups", options.config.norm_groups, "GroupNorm groups")->capture_default_str();
  architecture->add_flag("--release-shortcut", options.config.release_shortcut,
                         "Reproduce the release's width-changing ResBlock (h + Conv1x1(h))");

  auto* training = app.add_option_group("Training");
  training->add_option("--steps", options.steps, "Total optimisation steps")->capture_default_str()->check(CLI::PositiveNumber);
  training->add_option("-b,--batch-size", options.batch_size, "Images per step")->capture_default_str()->check(CLI::PositiveNumber);
  training->add_option("--lr", options.learning_rate, "Peak learning rate (Adam)")->capture_default_str()->check(CLI::PositiveNumber);
  training->add_option("--warmup", options.warmup_steps, "Linear warm-up steps, then cosine decay")->capture_default_str()->check(CLI::NonNegativeNumber);
  training->add_option("--commitment", options.commitment_weight, "Commitment loss weight")->capture_default_str();
  training->add_option("--dead-code-window", options.dead_code_window,
                       "Restart codes unused over this many steps on encoder outputs (0 = never)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  training->add_option("-s,--seed", options.seed, "Seed for initialisation, data order and code restarts")->capture_default_str();
  training->add_option("--checkpoint-every", options.checkpoint_every, "Save a checkpoint every N steps")
      ->capture_default_str()->check(CLI::PositiveNumber);
  training->add_option("--log-every", options.log_every, "Progress line and metrics record every N steps")
      ->capture_default_str()->check(CLI::PositiveNumber);
  training->add_option("--metrics", options.metrics_path, "Metrics log, JSON lines (default: OUT/train-state/tokenizer-metrics.jsonl)");
  training->add_option("--stop-after", options.stop_after,
                       "Stop with a checkpoint after N steps of this run (-1 = run to --steps); --resume continues")
      ->capture_default_str();
  training->add_flag("--resume", options.resume, "Continue from OUT/train-state/tokenizer.safetensors");
  training->add_flag("-q,--quiet", options.quiet, "No progress on stderr");
  add_runtime_options(app, runtime);

  return run_tool(app, argc, argv, [&] {
    try {
      options.config.channel_multipliers = parse_int_list(channel_multipliers);
    } catch (const std::exception& e) {
      throw_usage(fmt::format("--channel-mult: {}", e.what()));
    }
    try {
      options.config.validate();
    } catch (const std::exception& e) {
      throw_usage(e.what());
    }
    options.device = apply_runtime_options(runtime);
    install_interrupt_handlers();
    const TokenizerTrainResult result = train_tokenizer(options);
    if (result.interrupted) throw Error(ExitCode::interrupted, fmt::format("interrupted at step {}; continue with --resume", result.steps_done));
    if (!options.quiet)
      fmt::print(stderr, "done: {} steps, {:.1f} s this run, model in {}\n", result.steps_done, result.seconds, options.model_dir);
  });
}
