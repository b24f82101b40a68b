#include "cli/argument_flags.h"

namespace maskgit {

namespace {

struct ArgumentFlag {
  std::string_view argument;  // the library's name (InvalidArgument::argument())
  std::string_view flag;      // what the user typed
  std::string_view tool;      // empty: every tool
};

// One row per argument the library names (documented with InvalidArgument); a row for one tool
// comes before the row for every tool. An empty flag: no flag sets it (an environment
// variable), or the tools refuse it themselves before the library could (images, ids, files,
// image_size), and the message names the argument. tests/library_names_no_flags.sh checks
// that every argument the library throws has a row.
constexpr ArgumentFlag kArgumentFlags[] = {
    {"box", "--crop", "maskgit-outpaint"},  // outpaint's only box is the part of the input it keeps
    {"box", "--box", ""},
    {"cfg_scale", "--cfg-scale", ""},
    {"class", "--class", ""},
    {"canvas", "--canvas", ""},
    {"offset", "--offset", ""},
    {"left", "--left", ""},
    {"right", "--right", ""},
    {"top", "--top", ""},
    {"bottom", "--bottom", ""},
    {"margins", "--left/--right/--top/--bottom", ""},
    {"output", "--output", ""},
    {"batch_size", "--batch-size", ""},
    {"epochs", "--epochs", ""},
    {"log_every", "--log-every", ""},
    {"checkpoint_every", "--checkpoint-every", ""},
    {"learning_rate", "--lr", ""},
    {"limit", "--limit", ""},
    {"resume", "--resume", ""},
    {"overwrite", "--overwrite", ""},
    {"floor_count", "--floor-count", ""},
    {"channels", "--channels", "maskgit-train"},
    {"channels", "", ""},  // the other tools read the model's channels, not a flag
    {"image_size", "", ""},
    {"images", "", ""},
    {"ids", "", ""},
    {"files", "", ""},
    {"OMP_NUM_THREADS", "", ""},
    // Data-parallel training (training/distributed.h, training/launcher.h): the launch variables
    // torchrun and --nproc set, and DistributedOptions' fields.
    {"RANK", "", ""},
    {"WORLD_SIZE", "", ""},
    {"LOCAL_RANK", "", ""},
    {"LOCAL_WORLD_SIZE", "", ""},
    {"MASTER_ADDR", "", ""},
    {"MASTER_PORT", "", ""},
    {"backend", "--dist-backend", "maskgit-train"},
    {"backend", "", ""},
    {"timeout", "--dist-timeout", "maskgit-train"},
    {"timeout", "", ""},
    {"nproc", "--nproc", "maskgit-train"},
    // The training engine's options (training/engine.h).
    {"steps", "--steps", "maskgit-train"},
    {"stop_after", "--stop-after", "maskgit-train"},
    {"warmup_steps", "--warmup", "maskgit-train"},
    {"weight_decay", "--weight-decay", "maskgit-train"},
    {"betas", "", ""},              // no flag: the stages' own values
    {"eps", "", ""},                // no flag: AdamW's epsilon
    {"metrics", "--metrics", "maskgit-train"},
    {"settings", "", ""},           // the ranks' command lines (every rank must be started alike)
    {"final_lr_fraction", "", ""},  // no flag: the stages' own values
    {"world_size", "", ""},         // the number of ranks, from --nproc or the launcher
    // The tokenizer stage's losses (training/tokenizer_trainer.h).
    {"perceptual_weight", "--perceptual-weight", "maskgit-train"},
    {"adversarial_weight", "--adversarial-weight", "maskgit-train"},
    {"adversarial_start", "--adversarial-start", "maskgit-train"},
    {"discriminator_lr", "--discriminator-lr", "maskgit-train"},
    {"r1_weight", "--r1-weight", "maskgit-train"},
    {"init_from", "--init-from", "maskgit-train"},
    {"decoder_only", "--decoder-only", "maskgit-train"},
    {"perceptual_model", "--perceptual-model", "maskgit-train"},
    {"discriminator_layers", "--discriminator-layers", "maskgit-train"},
    {"discriminator_filters", "--discriminator-filters", "maskgit-train"},
    // Settings a checkpoint records, given beside --resume (TrainingRunOptions::resume_checks):
    // the fields of the stages' configurations.
    {"filters", "--filters", "maskgit-train"},
    {"channel_multipliers", "--channel-mult", "maskgit-train"},
    {"num_res_blocks", "--res-blocks", "maskgit-train"},
    {"codebook_size", "--codebook-size", "maskgit-train"},
    {"embedding_dim", "--embedding-dim", "maskgit-train"},
    {"norm_groups", "--norm-groups", "maskgit-train"},
    {"release_shortcut", "--release-shortcut", "maskgit-train"},
    {"dead_code_window", "--dead-code-window", "maskgit-train"},
    {"num_layers", "--layers", "maskgit-train"},
    {"hidden_size", "--hidden", "maskgit-train"},
    {"num_heads", "--heads", "maskgit-train"},
    {"mlp_dim", "--mlp-dim", "maskgit-train"},
    {"dropout", "--dropout", "maskgit-train"},
    {"width_multiplier", "--width-multiplier", "maskgit-train"},
    {"class_dropout", "--class-dropout", "maskgit-train"},
    {"label_smoothing", "--label-smoothing", "maskgit-train"},
    {"ema", "--ema", "maskgit-train"},
    {"seed", "--seed", "maskgit-train"},
};

}  // namespace

std::string flag_for_argument(std::string_view argument, std::string_view tool) {
  for (const ArgumentFlag& row : kArgumentFlags)
    if (row.argument == argument && (row.tool.empty() || row.tool == tool)) return std::string(row.flag);
  return std::string();
}

std::string describe_invalid_argument(std::string_view argument, std::string_view message, std::string_view tool) {
  const std::string flag = flag_for_argument(argument, tool);
  return (flag.empty() ? std::string(argument) : flag) + ": " + std::string(message);
}

}  // namespace maskgit
