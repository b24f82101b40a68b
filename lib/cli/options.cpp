#include "cli/options.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <random>
#include <stdexcept>

#include "cli/common.h"
#include "common/console.h"
#include "common/error.h"
#include "cli/image_record.h"
#include "common/version.h"
#include "decoding/schedule.h"
#include "model/model_dir.h"

namespace maskgit {

namespace {

constexpr ToolSet kTrain = tool_bit(Tool::train);
constexpr ToolSet kTokenize = tool_bit(Tool::tokenize);
constexpr ToolSet kSample = tool_bit(Tool::sample);
constexpr ToolSet kEval = tool_bit(Tool::eval);
constexpr ToolSet kInpaint = tool_bit(Tool::inpaint);
constexpr ToolSet kOutpaint = tool_bit(Tool::outpaint);
constexpr ToolSet kEdit = tool_bit(Tool::edit);
constexpr ToolSet kConvert = tool_bit(Tool::convert);
constexpr ToolSet kInfo = tool_bit(Tool::info);
constexpr ToolSet kBenchmark = tool_bit(Tool::benchmark);
constexpr ToolSet kEditing = kInpaint | kOutpaint | kEdit;          // the editing tools
constexpr ToolSet kMaking = kSample | kEditing;                     // tools that decode new tokens
constexpr ToolSet kPictures = kMaking | kTokenize;                  // tools that write PNGs of a model
constexpr ToolSet kTorch = kPictures | kEval | kTrain | kBenchmark;  // tools that run a network
constexpr ToolSet kAll = kTorch | kConvert | kInfo;

CLI::Validator split_names() { return CLI::IsMember({"train", "t10k"}); }
// CLI11's PositiveNumber / NonNegativeNumber, with a message that does not print the largest
// double in full: a finite number above 0 (at least 0).
CLI::Validator number_at_least(bool zero_allowed) {
  return CLI::Validator(
      [zero_allowed](std::string& text) -> std::string {
        double value = 0;
        if (!CLI::detail::lexical_cast(text, value) || !std::isfinite(value) || value < 0 || (!zero_allowed && value == 0))
          return fmt::format("\"{}\" is not a finite number {}", text, zero_allowed ? "of 0 or more" : "above 0");
        return std::string();
      },
      zero_allowed ? "NONNEGATIVE" : "POSITIVE");
}
CLI::Validator positive() { return number_at_least(false); }
CLI::Validator non_negative() { return number_at_least(true); }
CLI::Validator some_text() { return non_empty(); }
CLI::Validator dataset_limit() { return image_limit(); }
CLI::Validator count_per_unit() { return CLI::Range(1, 1000000); }
CLI::Validator batch_range() { return CLI::Range(1, 65536); }
CLI::Validator grid_scale_range() { return CLI::Range(1, 32); }
CLI::Validator thread_range() { return CLI::Range(0, 4096); }
CLI::Validator dilate_range() { return CLI::Range(0, 1024); }
CLI::Validator unit_interval() { return finite_range(0.0, 1.0); }
CLI::Validator fit_modes() { return CLI::IsMember({"none", "crop", "resize"}); }
CLI::Validator dtype_names() { return CLI::IsMember({"auto", "fp32", "bf16", "fp16"}); }
CLI::Validator order_names() { return CLI::IsMember({"confidence", "halton"}); }
CLI::Validator guidance_schedule_names() { return CLI::IsMember({"constant", "linear"}); }
CLI::Validator stage_names() { return CLI::IsMember({"tokenizer", "transformer", "classifier"}); }
CLI::Validator nproc_range() { return CLI::Range(1, 1024); }
CLI::Validator backend_names() { return CLI::IsMember({"auto", "gloo", "nccl"}); }
CLI::Validator dist_timeout_range() { return finite_range(1.0, 7 * 24 * 3600.0); }
CLI::Validator steps_range() { return CLI::Range(int64_t{1}, SamplingDefaults::kMaxSteps); }
CLI::Validator start_step_range() { return CLI::Range(int64_t{0}, SamplingDefaults::kMaxSteps - 1); }
CLI::Validator choice_temperature_range() { return finite_range(0, SamplingDefaults::kMaxChoiceTemperature); }
CLI::Validator temperature_range() {
  return finite_range(SamplingDefaults::kMinTemperature, SamplingDefaults::kMaxTemperature);
}
CLI::Validator top_k_range() { return CLI::Range(int64_t{0}, int64_t{1} << 30); }
CLI::Validator cfg_range() {
  return finite_range(-SamplingDefaults::kMaxGuidanceScale, SamplingDefaults::kMaxGuidanceScale);
}
CLI::Validator loss_weight() { return finite_range(0, 1e3); }
CLI::Validator dropout_range() { return finite_range(0.0, 0.99); }
CLI::Validator probability() { return finite_range(0.0, 1.0); }
CLI::Validator ema_range() { return finite_range(0.0, 0.999999); }
CLI::Validator discriminator_lr_range() { return finite_range(0, 1, /*exclude_low=*/true); }
CLI::Validator discriminator_filters_range() { return CLI::Range(1, 1024); }
CLI::Validator discriminator_layers_range() { return CLI::Range(1, 6); }
CLI::Validator width_multiplier_range() { return finite_range(0, 64, /*exclude_low=*/true); }
// At most FLT_MAX × (1 − β1) with β1 = 0.9, so that Adam's largest step fits in float32 (the
// trainers re-check it with their own β1 and weight decay).
CLI::Validator learning_rate_range() { return finite_range(0, 3.4e37, /*exclude_low=*/true); }
CLI::Validator schedule_text() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        try {
          const MaskSchedule schedule = parse_schedule(text);
          if (schedule.custom_reveals.size() > SamplingDefaults::kMaxCustomSteps)
            return fmt::format("a custom schedule has at most {} steps", SamplingDefaults::kMaxCustomSteps);
        } catch (const std::exception& e) {
          return e.what();
        }
        return std::string();
      },
      "");
}

std::vector<OptionSpec> build_table() {
  std::vector<OptionSpec> t;
  // Every tool.
  t.push_back({"version", "--version", "", "Print the tool's version and commit, and exit", kAll, nullptr});
  t.push_back({"verbose", "-v,--verbose", "", "Say more on stderr: the model's identity (its weights' SHA-256)", kAll,
               nullptr});
  t.push_back({"quiet", "-q,--quiet", "",
               "Nothing on stderr but errors (no progress, no notes) and a seed drawn by -s -1", kAll, nullptr});

  // Model and runtime.
  t.push_back({"model", "-m,--model", "Model",
               "Model directory (config.json + weights); default: $MASKGIT_MODEL, else the shipped Fashion-MNIST "
               "model",
               kPictures | kBenchmark, some_text});
  t.push_back({"device", "--device", "Runtime",
               "Where to run: auto (CUDA when this build and machine have it, else CPU), cpu, cuda, cuda:N", kTorch,
               some_text, "MASKGIT_DEVICE"});
  t.push_back({"threads", "-t,--threads", "Runtime",
               "CPU threads for LibTorch and BLAS; 0 = OMP_NUM_THREADS if set, else automatic: the CPUs this process "
               "may use less those other processes keep busy, re-checked as it runs",
               kTorch, thread_range});
  t.push_back({"batch_size", "-b,--batch-size", "Runtime",
               "Images per batch: per forward pass when generating, editing, tokenizing or evaluating (results do "
               "not depend on it), per optimisation step and rank when training",
               kTorch, batch_range});
  t.push_back({"replay", "--replay", "Output",
               "Re-make the PNG FILE exactly, from its maskgit-cpp.image/1 record (model, input, region, class, seed, "
               "settings); with it only -o, --json, -m (the same weights elsewhere), --device, -t, -b, -q and -v may be given",
               kPictures, some_text});

  // Inputs.
  t.push_back({"input", "-i,--input", "Input",
               "Input file, repeatable: images (PNG/JPEG) for the editing tools, maskgit-tokenize and maskgit-eval; "
               "maskgit-tokenize decode: a token file",
               kEditing | kTokenize | kEval, some_text});
  t.push_back({"inputs", "inputs", "Input", "Input files", kTokenize | kEval | kInfo, nullptr});
  t.push_back({"data", "-d,--data", "Input",
               "A dataset: an IDX directory (Fashion-MNIST layout) or file, or an image folder with one sub-folder "
               "per class",
               kEditing | kTokenize | kTrain, some_text});
  t.push_back({"split", "--split", "Input", "IDX split of --data: train or t10k", kEditing | kTokenize | kTrain,
               split_names});
  t.push_back({"limit", "--limit", "Input", "Only the first N images of the dataset (-1 = all)",
               kEditing | kTokenize | kTrain | kEval, dataset_limit});
  t.push_back({"fit", "--fit", "Input",
               "Inputs of another size than the model's: none (each image at its own size: at least the model's for "
               "the editing tools, larger ones decoded in overlapping windows; padded to whole tokens by "
               "maskgit-tokenize), crop (the centred largest part of the model's aspect ratio, resized to the "
               "model's size), resize (the whole image to the model's size). Masks and boxes are given in the "
               "input's pixels and follow the same crop and resize",
               kInpaint | kEdit | kTokenize, fit_modes});

  // What to make.
  t.push_back({"class", "-c,--class", "Class",
               "Class, by id or name (case-insensitive). maskgit-sample: repeatable or comma-separated (default: "
               "every class); maskgit-edit: the target class (required); maskgit-inpaint and -outpaint: without it "
               "the region is decoded unconditionally, with the model's \"no class\" token",
               kMaking, some_text});
  t.push_back({"num", "-n,--num,--variants", "Output",
               "Images to make per class (maskgit-sample) or per input (editing tools), each with its own seed",
               kMaking, count_per_unit});
  t.push_back({"seed", "-s,--seed", "Output",
               "Seed, 0..18446744073709551615, or -1 for a random one (printed and recorded). Image i of a run uses "
               "seed + i; maskgit-train: initialisation and data order; maskgit-eval: which floor images",
               kMaking | kTrain | kEval, nullptr, {}, true});

  // Outputs.
  t.push_back({"output", "-o,--output", "Output",
               "Output PNG pattern with one %d (the image index; optional for a single image); \"\" = no PNG files",
               kMaking | kTokenize, nullptr});
  t.push_back({"token_output", "-o,--output", "Output", "Token file to write (safetensors: ids [N,h,w], labels)",
               kTokenize, some_text});
  t.push_back({"model_output", "-o,--output,--out", "Output",
               "Model directory to write (maskgit-train: config.json, weights, train-state/)", kTrain | kConvert,
               some_text});
  t.push_back({"json", "--json", "Output", "Machine-readable output on stdout: one JSON object per line",
               kPictures | kEval | kConvert | kInfo, nullptr});
  t.push_back({"grid", "--grid", "Output",
               "Also write one picture of everything: samples a row per class; edits a row per input (input, "
               "regenerated tokens in red, results); reconstructions below their originals",
               kPictures, some_text});
  t.push_back({"grid_scale", "--grid-scale", "Output", "Enlargement of each image in --grid", kPictures,
               grid_scale_range});
  t.push_back({"save_tokens", "--save-tokens", "Output", "Also write the token grids (safetensors: ids, labels)",
               kSample, some_text});
  t.push_back({"save_mask", "--save-mask", "Output",
               "Also write the regenerated tokens as a picture at image size (white = regenerated; usable as a "
               "--mask)",
               kEditing, some_text});
  t.push_back({"originals", "--originals", "Output",
               "Also write the inputs (as the model sees them) to this pattern, for side-by-side views", kTokenize,
               some_text});

  // Regions of the editing tools.
  t.push_back({"mask", "--mask", "Region",
               "Mask picture of the input's size: white (or opaque) = regenerate (with --fit, cropped and resized "
               "with the image)",
               kInpaint, some_text});
  t.push_back({"threshold", "--threshold", "Region", "Grey level (0..1) from which a mask pixel selects", kInpaint,
               unit_interval});
  t.push_back({"invert", "--invert", "Region", "Regenerate the black (or transparent) pixels instead", kInpaint,
               nullptr});
  t.push_back({"box", "--box", "Region",
               "The box to regenerate, X,Y,W,H in the input's pixels (with --fit, cropped and resized with the image)",
               kEdit, some_text});
  t.push_back({"left", "--left", "Region", "Pixels to add on the left", kOutpaint, non_negative});
  t.push_back({"right", "--right", "Region", "Pixels to add on the right", kOutpaint, non_negative});
  t.push_back({"top", "--top", "Region", "Pixels to add on top", kOutpaint, non_negative});
  t.push_back({"bottom", "--bottom", "Region", "Pixels to add at the bottom", kOutpaint, non_negative});
  t.push_back({"canvas", "--canvas", "Region", "Instead of margins: the output size, WxH", kOutpaint, some_text});
  t.push_back({"offset", "--offset", "Region",
               "With --canvas: the image's top-left corner X,Y (default: centred, on whole tokens)", kOutpaint,
               some_text});
  t.push_back({"crop", "--crop", "Region",
               "First keep only this part of each input, X,Y,W,H in pixels (e.g. to regrow a cut-off side)",
               kOutpaint, some_text});
  t.push_back({"dilate", "--dilate", "Region", "Grow the regenerated tokens by K tokens on every side", kEditing,
               dilate_range});
  t.push_back({"feather", "--feather", "Region",
               "Blend radius (Gaussian sigma, pixels) of the composite; auto = the release's S/16 - 1 with S the "
               "model's image side (the shorter one), whatever the image's size: 15 at 256, 31 at 512, 0 at 28 "
               "(hard token edges)",
               kInpaint | kEdit, some_text});

  // The sampler.
  t.push_back({"steps", "--steps", "Sampler", "Decoding steps T (default: the model's config.json sampling.steps, in maskgit-edit "
               "sampling.edit_steps, when it has them; else the value shown)",
               kMaking | kEval, steps_range});
  t.push_back({"start_step", "--start-step", "Sampler",
               "First step t, ratios start at (t+1)/T (maskgit-edit's default: the model's "
               "sampling.edit_start_step when it has one; else the value shown)",
               kMaking | kEval, start_step_range});
  t.push_back({"schedule", "--schedule", "Sampler",
               "Mask schedule: cosine, linear, square, cubic, exp, sqrt, log, arccos, or custom:N1,N2,... (tokens "
               "revealed per step) (default: the model's sampling.schedule when it has one; else the value shown)",
               kMaking | kEval, schedule_text});
  t.push_back({"choice_temperature", "--choice-temperature", "Sampler",
               "Gumbel noise on the keep/re-mask choice, annealed to 0 (default: the model's "
               "sampling.choice_temperature when it has one; else the value shown, the release's)",
               kMaking | kEval,
               choice_temperature_range});
  t.push_back({"temperature", "--temperature", "Sampler",
               "Softmax temperature on the logits (1 = off; use --top-k 1 for greedy decoding) (default: the model's "
               "sampling.temperature when it has one; else the value shown)",
               kMaking | kEval, temperature_range});
  t.push_back({"top_k", "--top-k", "Sampler", "Sample among the k most likely codes only (0 = off)", kMaking | kEval,
               top_k_range});
  t.push_back({"cfg_scale", "--cfg-scale", "Sampler",
               "Classifier-free guidance s: logits = u + s(c - u) (1 = off; needs a model with a \"no class\" token, "
               "which the release's models lack) (default: the model's sampling.guidance_scale, in maskgit-edit "
               "sampling.edit_guidance_scale, when it has one; else the value shown)",
               kMaking | kEval, cfg_range});
  t.push_back({"cfg_schedule", "--cfg-schedule", "Sampler",
               "How guidance is spread over the steps: constant (s at every step) or linear (1 + (s - 1)(t+1)/T at "
               "step t: little while the layout is decided, all of s at the end; after Muse) (default: the model's "
               "sampling.guidance_schedule, in maskgit-edit sampling.edit_guidance_schedule, when it has one; else "
               "the value shown)",
               kMaking | kEval, guidance_schedule_names});
  t.push_back({"release_defaults", "--release-defaults", "Sampler",
               "Ignore the model's recommended decoding settings (config.json \"sampling\"): the release's behaviour, "
               "the values shown, for every sampler flag not given",
               kMaking | kEval, nullptr});
  t.push_back({"show_defaults", "--show-defaults", "Sampler",
               "Print the decoding settings this command would use, and where each comes from, then stop (--json: "
               "one JSON object)",
               kMaking | kEval, nullptr});
  t.push_back({"order", "--order", "Sampler",
               "Which positions to fix each step: confidence (the release) or halton (a fixed spread-out order)",
               kMaking | kEval, order_names});
  t.push_back({"dtype", "--dtype", "Sampler",
               "Precision of the transformer's forward pass: auto (bf16 on CUDA GPUs with native bf16, else fp32), "
               "fp32, bf16, fp16 (CUDA only); sampling is always fp32",
               kMaking | kEval | kBenchmark, dtype_names});

  // maskgit-eval.
  t.push_back({"classifier", "--classifier", "Judge",
               "Classifier directory (config.json + classifier.safetensors); default: $MASKGIT_CLASSIFIER or the "
               "shipped one; maskgit-tokenize evaluate judges reconstructions with it when it takes the images' size",
               kEval | kTokenize, some_text});
  t.push_back({"images", "--images", "Input", "Folder of generated images (class sub-folders, or PNGs that record "
                                               "their class)",
               kEval, some_text});
  t.push_back({"reference", "--reference", "Reference data", "Real images: IDX directory/file or image folder", kEval,
               some_text});
  t.push_back({"reference_split", "--reference-split", "Reference data", "IDX split of the reference: train or t10k",
               kEval, split_names});
  t.push_back({"floor_data", "--floor-data", "Reference data", "Real images for the floor (default: --reference)",
               kEval, some_text});
  t.push_back({"floor_split", "--floor-split", "Reference data", "IDX split of the floor images: train or t10k",
               kEval, split_names});
  t.push_back({"floor_count", "--floor-count", "Reference data",
               "Floor images (0 = as many as the evaluated images, at most 10000)", kEval, non_negative});
  t.push_back({"self_test", "--self-test", "Judge",
               "Instead of judging images: the classifier's accuracy on the labelled reference images, per class "
               "(--limit: only the first N)",
               kEval, nullptr});
  t.push_back({"sample_model", "--sample-model", "Sampling a model itself",
               "Model directory to sample: every class, --per-class images each", kEval, some_text});
  t.push_back({"per_class", "--per-class", "Sampling a model itself", "Images per class when sampling", kEval,
               count_per_unit});
  t.push_back({"sample_seed", "--sample-seed", "Sampling a model itself",
               "Seed of the first sampled image (image i uses seed + i; -1 = random)", kEval, nullptr, {}, true});

  // maskgit-train.
  t.push_back({"stage", "--stage", "Training", "Stage to train: tokenizer, transformer or classifier", kTrain,
               stage_names});
  t.push_back({"train_steps", "--steps", "Training", "Total optimisation steps (tokenizer 6000, transformer 10000)",
               kTrain, positive});
  t.push_back({"lr", "--lr", "Training", "Peak learning rate (1e-3)", kTrain, learning_rate_range});
  t.push_back({"warmup", "--warmup", "Training",
               "Linear warm-up steps, then cosine decay (tokenizer 200, transformer 500)", kTrain, non_negative});
  t.push_back({"checkpoint_every", "--checkpoint-every", "Training", "Save a checkpoint every N steps (500)", kTrain,
               positive});
  t.push_back({"log_every", "--log-every", "Training", "Progress line and metrics record every N steps (50)", kTrain,
               positive});
  t.push_back({"metrics", "--metrics", "Training",
               "Metrics log, JSON lines (default: OUT/train-state/<stage>-metrics.jsonl)", kTrain, some_text});
  t.push_back({"stop_after", "--stop-after", "Training",
               "Stop with a checkpoint after N steps of this run (-1 = run to --steps); --resume continues", kTrain,
               nullptr});
  t.push_back({"resume", "--resume", "Training", "Continue from OUT/train-state/<stage>.safetensors", kTrain,
               nullptr});
  t.push_back({"overwrite", "--overwrite", "Output",
               "Replace what is there: maskgit-train starts over although OUT holds this stage's checkpoint or model; "
               "maskgit-convert replaces a model directory holding only config.json and the two weights files",
               kTrain | kConvert, nullptr});
  t.push_back({"nproc", "--nproc", "Data-parallel",
               "Train on N local processes (ranks), each on its shard of every batch (--batch-size is per rank); "
               "under torchrun (WORLD_SIZE set) the launcher decides and this must not be given",
               kTrain, nproc_range});
  t.push_back({"dist_backend", "--dist-backend", "Data-parallel",
               "Collectives of a multi-process run: gloo (CPU), nccl (CUDA, one GPU per rank) or auto", kTrain,
               backend_names});
  t.push_back({"dist_timeout", "--dist-timeout", "Data-parallel",
               "Seconds a rank waits for the others (rendezvous, each collective) before it gives up with an error",
               kTrain, dist_timeout_range});
  t.push_back({"channels", "--channels", "Tokenizer", "Image channels: 1 or 3 (tokenizer and classifier stages)", kTrain,
               nullptr});
  t.push_back({"filters", "--filters", "Tokenizer", "Base width F", kTrain, nullptr});
  t.push_back({"channel_mult", "--channel-mult", "Tokenizer", "Width multipliers per level; levels-1 halvings", kTrain,
               some_text});
  t.push_back({"res_blocks", "--res-blocks", "Tokenizer", "ResBlocks per level", kTrain, nullptr});
  t.push_back({"codebook_size", "--codebook-size", "Tokenizer", "Codebook entries K", kTrain, nullptr});
  t.push_back({"embedding_dim", "--embedding-dim", "Tokenizer", "Code dimension D", kTrain, nullptr});
  t.push_back({"norm_groups", "--norm-groups", "Tokenizer", "GroupNorm groups", kTrain, nullptr});
  t.push_back({"release_shortcut", "--release-shortcut", "Tokenizer",
               "Reproduce the release's width-changing ResBlock (h + Conv1x1(h))", kTrain, nullptr});
  t.push_back({"commitment", "--commitment", "Tokenizer", "Commitment loss weight", kTrain, loss_weight});
  t.push_back({"dead_code_window", "--dead-code-window", "Tokenizer",
               "Restart codes unused over this many steps on encoder outputs (0 = never)", kTrain, non_negative});
  t.push_back({"perceptual_model", "--perceptual-model", "Tokenizer",
               "Add a perceptual loss through this frozen network (a classifier directory trained for it, never the "
               "evaluation classifier; scripts/train_perceptual.sh)", kTrain, some_text});
  t.push_back({"perceptual_weight", "--perceptual-weight", "Tokenizer", "Weight of the perceptual loss", kTrain,
               loss_weight});
  t.push_back({"adversarial_weight", "--adversarial-weight", "Tokenizer",
               "Weight of the adversarial loss (× VQGAN's adaptive weight); 0 = no discriminator", kTrain, loss_weight});
  t.push_back({"adversarial_start", "--adversarial-start", "Tokenizer",
               "Steps before the discriminator and the adversarial loss start (0: from the first step)", kTrain,
               non_negative});
  t.push_back({"discriminator_lr", "--discriminator-lr", "Tokenizer", "The discriminator's (constant) learning rate",
               kTrain, discriminator_lr_range});
  t.push_back({"r1_weight", "--r1-weight", "Tokenizer", "R1 penalty γ on real images (the discriminator adds γ/2 · R1)",
               kTrain, loss_weight});
  t.push_back({"discriminator_filters", "--discriminator-filters", "Tokenizer",
               "The discriminator's first width (doubled per layer)", kTrain, discriminator_filters_range});
  t.push_back({"discriminator_layers", "--discriminator-layers", "Tokenizer",
               "The discriminator's stride-2 convolutions (each halves the patch grid)", kTrain, discriminator_layers_range});
  t.push_back({"init_from", "--init-from", "Training",
               "Start a new run from this model directory's tokenizer or transformer (the stage trained), "
               "with its architecture (architecture flags beside it are refused)",
               kTrain, some_text});
  t.push_back({"decoder_only", "--decoder-only", "Tokenizer",
               "Train the decoder alone (needs --init-from): token grids, and a transformer trained on them, stay valid",
               kTrain, nullptr});
  t.push_back({"layers", "--layers", "Transformer", "Transformer layers", kTrain, nullptr});
  t.push_back({"hidden", "--hidden", "Transformer", "Hidden size", kTrain, nullptr});
  t.push_back({"heads", "--heads", "Transformer", "Attention heads", kTrain, nullptr});
  t.push_back({"mlp_dim", "--mlp-dim", "Transformer", "MLP width", kTrain, nullptr});
  t.push_back({"dropout", "--dropout", "Transformer",
               "Dropout (the transformer's also on attention weights; the classifier's before its logits, default 0.3)",
               kTrain, dropout_range});
  t.push_back({"class_dropout", "--class-dropout", "Transformer",
               "Probability of training on the no-class token (enables guidance and unconditional decoding)", kTrain,
               probability});
  t.push_back({"label_smoothing", "--label-smoothing", "Transformer", "Label smoothing of the masked-token loss",
               kTrain, dropout_range});
  t.push_back({"weight_decay", "--weight-decay", "Training",
               "AdamW decoupled weight decay on matrices and kernels (transformer 0.045, tokenizer and classifier 0)",
               kTrain, loss_weight});
  t.push_back({"ema", "--ema", "Transformer", "EMA decay of the shipped weights (0 = off, e.g. 0.999)", kTrain,
               ema_range});
  t.push_back({"epochs", "--epochs", "Classifier", "Epochs (instead of --steps)", kTrain, positive});
  t.push_back({"eval_split", "--eval-split", "Classifier",
               "After training, report accuracy on the whole of this split of --data, e.g. t10k (--limit applies to training only)", kTrain, split_names});
  t.push_back({"width_multiplier", "--width-multiplier", "Classifier", "Channel width multiplier", kTrain,
               width_multiplier_range});
  t.push_back({"augment", "--augment", "Classifier", "Random 2-pixel shifts and horizontal flips", kTrain, nullptr});

  // maskgit-convert.
  t.push_back({"tokenizer_checkpoint", "--tokenizer", "Release checkpoints",
               "The release's tokenizer checkpoint (tokenizer_imagenet*_checkpoint)", kConvert, some_text});
  t.push_back({"transformer_checkpoint", "--transformer", "Release checkpoints",
               "The release's transformer checkpoint (maskgit_imagenet*_checkpoint)", kConvert, some_text});
  t.push_back({"class_names", "--class-names", "Release checkpoints",
               "Text file with one class name a line (1000 for ImageNet); without it classes are named by id",
               kConvert, some_text});
  return t;
}

std::mutex drawn_mutex;
std::vector<std::pair<std::string, uint64_t>> drawn_seeds;

}  // namespace

std::string tool_name(Tool tool) {
  switch (tool) {
    case Tool::train: return "maskgit-train";
    case Tool::tokenize: return "maskgit-tokenize";
    case Tool::sample: return "maskgit-sample";
    case Tool::eval: return "maskgit-eval";
    case Tool::inpaint: return "maskgit-inpaint";
    case Tool::outpaint: return "maskgit-outpaint";
    case Tool::edit: return "maskgit-edit";
    case Tool::convert: return "maskgit-convert";
    case Tool::info: return "maskgit-info";
    case Tool::benchmark: return "maskgit-benchmark";
  }
  return "maskgit";
}

std::vector<Tool> all_tools() {
  return {Tool::train,    Tool::tokenize, Tool::sample,  Tool::eval, Tool::inpaint,
          Tool::outpaint, Tool::edit,     Tool::convert, Tool::info, Tool::benchmark};
}

const std::vector<OptionSpec>& option_table() {
  static const std::vector<OptionSpec> table = build_table();
  return table;
}

const OptionSpec& option_spec(std::string_view id) {
  for (const OptionSpec& spec : option_table())
    if (spec.id == id) return spec;
  throw std::logic_error(fmt::format("no option \"{}\" in the option table", id));
}

ToolOptions::ToolOptions(CLI::App& app, Tool tool) : app_(app), tool_(tool) {
  app_.set_version_flag(std::string(option_spec("version").names), version_line(tool_name(tool)),
                        std::string(option_spec("version").help));
  added_.push_back("version");
  add_flag("verbose", verbose_);
  add_flag("quiet", quiet_);
  // --replay FILE is taken apart before parsing (run_tool); here it is listed and accepted.
  if ((option_spec("replay").tools & tool_bit(tool)) != 0) add_no_default("replay", replay_file_)->type_name("FILE");
  // Options of the whole tool are accepted after a subcommand's name too
  // (`maskgit-tokenize evaluate --json` as `maskgit-tokenize --json evaluate`).
  app_.fallthrough();
}

const OptionSpec& ToolOptions::checked_spec(std::string_view id) const {
  const OptionSpec& spec = option_spec(id);
  if ((spec.tools & tool_bit(tool_)) == 0)
    throw std::logic_error(fmt::format("option \"{}\" is not listed for {} in the option table", id, tool_name(tool_)));
  return spec;
}

CLI::Option* ToolOptions::add_flag(std::string_view id, bool& value, CLI::App* on) {
  const OptionSpec& spec = checked_spec(id);
  return finish(spec, target(on).add_flag(std::string(spec.names), value, std::string(spec.help)), false);
}

CLI::Option* ToolOptions::finish(const OptionSpec& spec, CLI::Option* option, bool show_default) {
  if (!spec.group.empty()) option->group(std::string(spec.group));
  if (show_default) option->capture_default_str();
  if (spec.check != nullptr) option->check(spec.check());
  if (spec.seed) option->transform(seed_value(option->get_name()));  // may turn -1 into the drawn seed
  if (!spec.env.empty()) option->envname(std::string(spec.env));
  added_.emplace_back(spec.id);
  return option;
}

void apply_verbosity(const ToolOptions& options) {
  if (options.quiet_ && options.verbose_) throw_usage("--quiet and --verbose: give one of them");
  set_verbosity(options.quiet_ ? Verbosity::quiet : options.verbose_ ? Verbosity::verbose : Verbosity::normal);
}

CLI::Validator seed_value(const std::string& flag) {
  return CLI::Validator(
      [flag](std::string& text) -> std::string {
        if (text == "-1") {
          std::random_device device;
          const uint64_t seed = ((uint64_t{device()} << 32) | device()) >> 1;  // below 2^63: seed + i never wraps
          text = std::to_string(seed);
          const std::lock_guard<std::mutex> lock(drawn_mutex);
          drawn_seeds.emplace_back(flag, seed);
          return std::string();
        }
        const bool digits = !text.empty() && text.size() <= 20 &&
                            std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); });
        errno = 0;
        if (digits) std::strtoull(text.c_str(), nullptr, 10);
        if (!digits || errno == ERANGE)
          return fmt::format("\"{}\" is not a seed (a whole number from 0 to 18446744073709551615, or -1 for a "
                             "random one)",
                             text);
        return std::string();
      },
      "0..2^64-1 or -1");
}

int run_tool(ToolOptions& cli, int argc, char** argv, const std::function<void()>& body) {
  std::vector<std::string> args(argv, argv + argc);
  try {
    args = expand_replay(cli.tool(), args);
  } catch (const Error& e) {
    print_stderr("{}: error: {}\n", cli.app().get_name(), e.what());
    return static_cast<int>(e.code());
  }
  std::vector<char*> pointers;
  for (std::string& arg : args) pointers.push_back(arg.data());
  return run_tool(cli.app(), static_cast<int>(pointers.size()), pointers.data(), [&] {
    apply_verbosity(cli);
    body();
    // After the work (a failed run keeps its one error line): a drawn seed is printed even with
    // -q, since an output that records no seed (--save-tokens, maskgit-eval) would lose it.
    for (const auto& [flag, seed] : drawn_random_seeds())
      print_stderr("{}: {} {} (random)\n", tool_name(cli.tool()), flag, seed);
  });
}

std::vector<std::pair<std::string, uint64_t>> drawn_random_seeds() {
  const std::lock_guard<std::mutex> lock(drawn_mutex);
  return drawn_seeds;
}

}  // namespace maskgit
