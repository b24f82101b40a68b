#include "training/tokenizer_trainer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "common/error.h"
#include "compat/torch_compat.h"
#include "data/batcher.h"
#include "eval/classifier.h"
#include "io/atomic_file.h"
#include "io/file_hash.h"
#include "io/tensor_io.h"
#include "model/model_dir.h"
#include "tokenizer/perceptual.h"
#include "tokenizer/vqgan.h"
#include "training/distributed.h"
#include "training/optimizer.h"

namespace maskgit {
namespace fs = std::filesystem;

TokenizerTrainOptions::TokenizerTrainOptions() {
  steps = 6000;
  batch_size = 128;
  learning_rate = 1e-3;
  warmup_steps = 200;
  final_lr_fraction = 0.05;
}

std::string TokenizerTrainOptions::state_path() const { return training_state_path(model_dir, "tokenizer"); }

std::string TokenizerTrainOptions::resolved_metrics_path() const {
  return metrics_path.empty() ? training_metrics_path(model_dir, "tokenizer") : metrics_path;
}

namespace {

double psnr_from_mse(double mse) { return 10.0 * std::log10(1.0 / std::max(mse, 1e-12)); }

// Flattened encoder outputs [M, D] of latents [B, D, h, w], for seeding and restarting codes.
torch::Tensor flat_latents(const torch::Tensor& latents) {
  return latents.detach().permute({0, 2, 3, 1}).reshape({-1, latents.size(1)});
}

// Replaces the rows of `codebook` selected by `rows` with random encoder outputs.
void reseed_codes(torch::Tensor& codebook, const torch::Tensor& rows, const torch::Tensor& latents, uint64_t seed) {
  torch::NoGradGuard no_grad;
  const int64_t count = rows.numel();
  if (count == 0) return;
  auto generator = compat::make_cpu_generator(seed);
  torch::Tensor picks = torch::randint(latents.size(0), {count}, generator, torch::kLong);
  torch::Tensor chosen = latents.to(torch::kCPU).index_select(0, picks);
  // A little noise so that codes restarted on near-identical latents separate.
  chosen += 0.01 * chosen.std() * torch::randn(chosen.sizes(), generator);
  codebook.index_copy_(0, rows.to(codebook.device()), chosen.to(codebook.device()));
}

// The loss settings a checkpoint records ("tokenizer_losses"; absent in checkpoints of the
// plain-MSE trainer, which resume as such).
Json loss_settings(const TokenizerTrainOptions& options, const std::string& perceptual_sha256) {
  Json json{{"codebook_weight", options.codebook_weight},
            {"commitment_weight", options.commitment_weight},
            {"dead_code_window", options.dead_code_window},
            {"init_from", options.init_from},
            {"decoder_only", options.decoder_only},
            {"perceptual_model", options.perceptual_model},
            {"perceptual_sha256", perceptual_sha256},
            {"perceptual_weight", options.perceptual_weight},
            {"adversarial_weight", options.adversarial_weight},
            {"adversarial_start", options.adversarial_start},
            {"discriminator_lr", options.discriminator_lr},
            {"r1_weight", options.r1_weight},
            {"discriminator", options.discriminator.to_json()}};
  return json;
}

// Reads what loss_settings wrote into `options` (and the perceptual network's SHA-256); throws
// std::runtime_error naming the field.
void read_loss_settings(const Json& json, TokenizerTrainOptions& options, std::string& perceptual_sha256) {
  if (!json.is_object()) throw std::runtime_error("expected an object");
  static const char* const kFields[] = {"codebook_weight",    "commitment_weight", "dead_code_window",  "init_from",
                                        "decoder_only",       "perceptual_model",  "perceptual_sha256", "perceptual_weight",
                                        "adversarial_weight", "adversarial_start", "discriminator_lr",  "r1_weight",
                                        "discriminator"};
  for (const auto& entry : json.items()) {
    const std::string& key = entry.key();
    if (std::find_if(std::begin(kFields), std::end(kFields), [&](const char* field) { return key == field; }) ==
        std::end(kFields))
      throw std::runtime_error(fmt::format("{}: unknown field", key.substr(0, 64)));
  }
  auto member = [&](const char* key) -> const Json& {
    const auto it = json.find(key);
    if (it == json.end()) throw std::runtime_error(fmt::format("{} is missing", key));
    return *it;
  };
  auto number = [&](const char* key, double minimum, double maximum) {
    const Json& value = member(key);
    if (!value.is_number()) throw std::runtime_error(fmt::format("{} must be a number", key));
    const double x = value.get<double>();
    if (!(x >= minimum && x <= maximum))
      throw std::runtime_error(fmt::format("{} is {}, must be in {}..{}", key, x, minimum, maximum));
    return x;
  };
  auto integer = [&](const char* key, int64_t minimum, int64_t maximum) {
    const Json& value = member(key);
    if (!value.is_number_integer()) throw std::runtime_error(fmt::format("{} must be an integer", key));
    const int64_t x = value.get<int64_t>();
    if (x < minimum || x > maximum)
      throw std::runtime_error(fmt::format("{} is {}, must be in {}..{}", key, x, minimum, maximum));
    return x;
  };
  auto text = [&](const char* key) {
    const Json& value = member(key);
    if (!value.is_string()) throw std::runtime_error(fmt::format("{} must be a string", key));
    return value.get<std::string>();
  };
  const Json& only = member("decoder_only");
  if (!only.is_boolean()) throw std::runtime_error("decoder_only must be true or false");
  options.decoder_only = only.get<bool>();
  options.codebook_weight = number("codebook_weight", 0, 1e6);
  options.commitment_weight = number("commitment_weight", 0, 1e6);
  options.dead_code_window = integer("dead_code_window", 0, int64_t{1} << 40);
  options.init_from = text("init_from");
  options.perceptual_model = text("perceptual_model");
  perceptual_sha256 = text("perceptual_sha256");
  const bool hex = perceptual_sha256.size() == 64 &&
                   perceptual_sha256.find_first_not_of("0123456789abcdef") == std::string::npos;
  if (options.perceptual_model.empty() ? !perceptual_sha256.empty() : !hex)
    throw std::runtime_error("perceptual_sha256 must be 64 hex digits exactly when there is a perceptual_model");
  options.perceptual_weight = number("perceptual_weight", 0, 1e6);
  options.adversarial_weight = number("adversarial_weight", 0, 1e6);
  options.adversarial_start = integer("adversarial_start", 0, int64_t{1} << 50);
  options.discriminator_lr = number("discriminator_lr", 1e-30, 1);
  options.r1_weight = number("r1_weight", 0, 1e6);
  options.discriminator = DiscriminatorConfig::from_json(member("discriminator"), "discriminator");
}

// The side of the discriminator's logit grid for images of `pixels` a side (4×4 stride-2
// convolutions with padding 1, then a 3×3 one that keeps the size).
int64_t discriminator_grid(int64_t pixels, int64_t layers) {
  for (int64_t i = 0; i < layers; ++i) {
    if (pixels + 2 < 4) return 0;  // the padded input is smaller than the kernel
    pixels = (pixels + 2 - 4) / 2 + 1;
  }
  return pixels;
}

// Refuses settings that cannot work together; InvalidArgument naming the option.
void check_loss_options(const TokenizerTrainOptions& options) {
  auto weight = [](const char* name, double value) {
    if (!std::isfinite(value) || value < 0 || value > 1e6)
      throw InvalidArgument(name, fmt::format("is {}, must be in 0..1e6", value));
  };
  weight("perceptual_weight", options.perceptual_weight);
  weight("adversarial_weight", options.adversarial_weight);
  weight("r1_weight", options.r1_weight);
  if (!std::isfinite(options.discriminator_lr) || options.discriminator_lr <= 0 || options.discriminator_lr > 1)
    throw InvalidArgument("discriminator_lr", fmt::format("is {}, must be in (0, 1]", options.discriminator_lr));
  if (options.adversarial_start < 0) throw InvalidArgument("adversarial_start", "must be 0 or more");
  if (options.adversarial() && !options.resume && options.adversarial_start >= options.steps)
    throw InvalidArgument("adversarial_start", fmt::format("is {}: the discriminator would start after the last of the "
                                                           "{} steps",
                                                           options.adversarial_start, options.steps));
  if (options.decoder_only && options.init_from.empty() && !options.resume)
    throw InvalidArgument("decoder_only", "needs a trained tokenizer to start from (init_from)");
  if (options.adversarial()) {
    try {
      options.discriminator.validate();
    } catch (const std::exception& e) {
      throw InvalidArgument(options.discriminator.layers < 1 || options.discriminator.layers > 6 ? "discriminator_layers"
                                                                                                 : "discriminator_filters",
                            e.what());
    }
  }
}

// The SHA-256 of the evaluation classifier's weights (default_classifier_dir()), "" when there is none.
std::string evaluation_classifier_sha256() {
  const std::string path = (fs::path(default_classifier_dir()) / kClassifierWeightsFile).string();
  return file_exists(path) ? sha256_file(path) : std::string();
}

class TokenizerStage final : public TrainingStage {
 public:
  explicit TokenizerStage(TokenizerTrainOptions& options) : options_(options) {}

  std::string name() const override { return "tokenizer"; }
  std::string output_dir() const override { return options_.model_dir; }
  std::string weights_path() const override { return (fs::path(options_.model_dir) / kTokenizerWeightsFile).string(); }
  std::vector<std::string> written_files() const override {
    return {weights_path(), (fs::path(options_.model_dir) / kModelConfigFile).string()};
  }

  void read_settings(const CheckpointReader& checkpoint) override {
    options_.config = checkpoint.parsed(
        "tokenizer_config", [](const Json& json) { return TokenizerConfig::from_json(json); });
    // The losses (and the perceptual network, checked by hash in prepare) come from the
    // checkpoint; a plain-MSE checkpoint has none of them. A perceptual network named now
    // replaces the recorded path (a moved directory) when its weights are the recorded ones.
    const std::string named_network = options_.perceptual_model;
    options_.perceptual_model.clear();
    options_.adversarial_weight = 0;
    options_.decoder_only = false;
    options_.init_from.clear();
    if (!checkpoint.has("tokenizer_losses")) return;
    checkpoint.parsed("tokenizer_losses", [&](const Json& json) {
      read_loss_settings(json, options_, perceptual_sha256_);
      return 0;
    });
    if (!named_network.empty()) {
      if (options_.perceptual_model.empty())
        throw InvalidArgument("perceptual_model", fmt::format("{} was trained without a perceptual loss: a resumed run "
                                                              "cannot add one (start a new run, e.g. with --init-from)",
                                                              checkpoint.path()));
      options_.perceptual_model = fs::absolute(named_network).string();
    }
  }

  int64_t prepare() override {
    check_loss_options(options_);
    ModelConfig init;
    const bool start_from_model = !options_.init_from.empty() && !options_.resume;  // resumed: the checkpoint's weights
    if (start_from_model) {
      init = read_model_config(options_.init_from);
      if (!init.tokenizer)
        throw InvalidArgument("init_from", fmt::format("{} has no tokenizer", options_.init_from));
      options_.config = *init.tokenizer;
    }
    options_.config.validate();
    options_.data.channels = static_cast<int>(options_.config.channels);
    data_ = load_dataset(options_.data);
    model_.directory = options_.model_dir;
    if (file_exists(model_.path_of(kModelConfigFile))) model_ = read_model_config(options_.model_dir);
    model_.image_height = data_.images.size(2);
    model_.image_width = data_.images.size(3);
    model_.image_channels = options_.config.channels;
    model_.class_names = data_.class_names;
    model_.tokenizer = options_.config;
    // A transformer section that no longer fits the new tokenizer (codebook, grid, classes) would
    // make config.json invalid: dropped (its weights file stays; the CLI says to retrain it).
    if (model_.transformer && !transformer_mismatch(*model_.transformer, model_).empty()) model_.transformer.reset();

    torch::manual_seed(options_.seed);  // parameter initialisation, the same on every rank
    tokenizer_ = VQTokenizer(options_.config);
    tokenizer_->to(options_.device);
    tokenizer_->train();
    if (start_from_model) {
      // The starting weights (a fresh run; a resumed one loads its checkpoint over them).
      VQTokenizer start = load_tokenizer(init, options_.device);
      torch::NoGradGuard no_grad;
      const auto source = start->named_parameters();
      for (auto& item : tokenizer_->named_parameters()) item.value().copy_(source[item.key()]);
    }
    if (options_.decoder_only) {
      // Only the decoder is trained: the optimizer takes what still requires a gradient.
      for (auto& parameter : tokenizer_->encoder->parameters()) parameter.set_requires_grad(false);
      tokenizer_->quantizer->codebook.set_requires_grad(false);
      options_.dead_code_window = 0;
    }
    code_usage_ = torch::zeros({options_.config.codebook_size}, torch::kLong);

    if (!options_.resume) {
      // Recorded in the checkpoint: absolute, so that a resume from elsewhere finds them.
      if (!options_.perceptual_model.empty()) options_.perceptual_model = fs::absolute(options_.perceptual_model).string();
      if (!options_.init_from.empty()) options_.init_from = fs::absolute(options_.init_from).string();
    }
    if (!options_.perceptual_model.empty()) {
      perceptual_ = std::make_unique<PerceptualLoss>(options_.perceptual_model, options_.config.channels, options_.device);
      perceptual_->check_image_size(model_.image_height, model_.image_width);
      if (perceptual_->weights_sha256() == evaluation_classifier_sha256())
        throw InvalidArgument("perceptual_model",
                              fmt::format("{} is the evaluation classifier ({}): a tokenizer trained against the "
                                          "judge's own features would only please the judge; train another network "
                                          "for the purpose (scripts/train_perceptual.sh)",
                                          options_.perceptual_model, default_classifier_dir()));
      if (!perceptual_sha256_.empty() && perceptual_sha256_ != perceptual_->weights_sha256())
        throw_bad_input(fmt::format("{}: the perceptual network's weights changed since the checkpoint was written "
                                    "(SHA-256 {}, now {}); resuming would train against another loss",
                                    options_.perceptual_model, perceptual_sha256_, perceptual_->weights_sha256()));
      perceptual_sha256_ = perceptual_->weights_sha256();
    }
    if (options_.adversarial()) {
      options_.discriminator.channels = options_.config.channels;
      const int64_t factor = options_.config.downsample_factor();
      const int64_t side = std::min((model_.image_height + factor - 1) / factor * factor,
                                    (model_.image_width + factor - 1) / factor * factor);
      if (discriminator_grid(side, options_.discriminator.layers) < 1)
        throw InvalidArgument("discriminator_layers",
                              fmt::format("{} stride-2 layers leave no patch of a {}-pixel side (at most {})",
                                          options_.discriminator.layers, side, [&] {
                                            int64_t layers = 0;
                                            while (discriminator_grid(side, layers + 1) >= 1) ++layers;
                                            return layers;
                                          }()));
      torch::manual_seed(mix_seed(options_.seed, 0xD15C));
      discriminator_ = PatchDiscriminator(options_.discriminator);
      discriminator_->to(options_.device);
      discriminator_->train();
      std::vector<std::pair<std::string, torch::Tensor>> named;
      for (const auto& item : discriminator_->named_parameters()) named.emplace_back(item.key(), item.value());
      // The release's β = (0, 0.99) (docs/model.md §2.7).
      discriminator_optimizer_ =
          std::make_unique<AdamWOptimizer>(named, AdamWSettings{0.0, 0.99, 1e-8, 0.0}, "discriminator_adam");
    }
    return data_.images.size(0);
  }

  int64_t total_steps(int64_t) const override { return options_.steps; }
  torch::nn::Module& module() override { return *tokenizer_; }

  void load_state(const CheckpointReader& checkpoint) override {
    load_module_state(*tokenizer_, checkpoint.file(), checkpoint.path(), "model.");
    if (discriminator_) {
      load_module_state(*discriminator_, checkpoint.file(), checkpoint.path(), "discriminator.");
      discriminator_optimizer_->load(checkpoint);
    }
    code_usage_ = checkpoint.tensor("trainer.code_usage").to(torch::kLong);
    if (code_usage_.dim() != 1 || code_usage_.numel() != options_.config.codebook_size)
      checkpoint.fail(fmt::format("\"trainer.code_usage\" has {} entries, the codebook {}", code_usage_.numel(),
                                  options_.config.codebook_size));
  }

  // The codebook starts on encoder outputs of the first global batch, so that every code
  // starts where data lives (each rank encodes its shard; all-gathered in rank order, they are
  // the global batch's, whatever the number of ranks).
  void initialise(const StepBatch& first_batch) override {
    if (!options_.init_from.empty()) return;  // the codebook is the starting tokenizer's
    torch::NoGradGuard no_grad;
    const torch::Tensor latents =
        options_.group->all_gather(flat_latents(tokenizer_->encoder(images_of(first_batch.shard_indices()))));
    reseed_codes(tokenizer_->quantizer->codebook, torch::arange(options_.config.codebook_size, torch::kLong), latents,
                 mix_seed(options_.seed, 0xC0DEB00C));
  }

  std::string describe(int64_t dataset_size) const override {
    std::string line =
        fmt::format("tokenizer: {} parameters, codebook {}×{}, {} tokens per image, {} training images",
                    count_parameters(*tokenizer_), options_.config.codebook_size, options_.config.embedding_dim,
                    tokenizer_->grid_size(model_.image_height) * tokenizer_->grid_size(model_.image_width), dataset_size);
    if (options_.decoder_only) line += fmt::format("\n  decoder only (encoder and codebook frozen), from {}", options_.init_from);
    else if (!options_.init_from.empty()) line += fmt::format("\n  fine-tuning, from {}", options_.init_from);
    if (perceptual_)
      line += fmt::format("\n  perceptual loss × {} through {}", options_.perceptual_weight, options_.perceptual_model);
    if (discriminator_)
      line += fmt::format("\n  adversarial loss × {} (adaptive) from step {}: discriminator of {} parameters, lr {}, "
                          "R1 γ {}",
                          options_.adversarial_weight, options_.adversarial_start + 1, count_parameters(*discriminator_),
                          options_.discriminator_lr, options_.r1_weight);
    return line;
  }

  StepOutput forward(const StepBatch& batch) override {
    const torch::Tensor images = images_of(batch.shard_indices());
    const Reconstruction out = tokenizer_->forward(images);
    const torch::Tensor reconstruction_loss = (out.images - images).pow(2).mean();
    torch::Tensor fidelity = reconstruction_loss;
    torch::Tensor perceptual = torch::zeros({}, images.options());
    if (perceptual_) {
      perceptual = (*perceptual_)(out.images, images);
      fidelity = fidelity + options_.perceptual_weight * perceptual;
    }
    torch::Tensor adversarial = torch::zeros({}, images.options());
    torch::Tensor critic = torch::zeros({}, images.options());
    torch::Tensor adaptive = torch::zeros({}, images.options());
    torch::Tensor loss = fidelity;
    if (discriminator_ && batch.step >= options_.adversarial_start) {
      critic = discriminator_step(images, out.images.detach());
      // The generator's term through the updated discriminator, whose own gradients are not wanted.
      for (auto& parameter : discriminator_->parameters()) parameter.set_requires_grad(false);
      adversarial = generator_adversarial_loss(discriminator_->forward(out.images));
      for (auto& parameter : discriminator_->parameters()) parameter.set_requires_grad(true);
      adaptive = adaptive_weight(fidelity, adversarial);
      loss = loss + options_.adversarial_weight * adaptive * adversarial;
    }
    StepOutput step;
    step.loss = loss + options_.codebook_weight * out.quantized.codebook_loss +
                options_.commitment_weight * out.quantized.commitment_loss;
    step.weight = static_cast<double>(batch.shard_size);
    step.metrics = {reconstruction_loss, perceptual, adversarial, critic, adaptive};
    step.sums = torch::bincount(out.quantized.ids.flatten(), {}, options_.config.codebook_size);
    latents_ = flat_latents(out.latents);
    return step;
  }

  void after_update(int64_t steps_done, const torch::Tensor& sums) override {
    code_usage_ += sums.to(torch::kCPU, torch::kLong);
    codes_in_use_ = (code_usage_ > 0).sum().item<int64_t>();  // since the last restart window began
    if (options_.dead_code_window > 0 && steps_done % options_.dead_code_window == 0) {
      const torch::Tensor dead = (code_usage_ == 0).nonzero().flatten();
      codes_used_ = options_.config.codebook_size - dead.numel();
      // Restarted on the encoder outputs of the whole global batch, in rank order.
      reseed_codes(tokenizer_->quantizer->codebook, dead, options_.group->all_gather(latents_),
                   mix_seed(options_.seed, static_cast<uint64_t>(steps_done)));
      code_usage_.zero_();
    }
  }

  std::string progress(const WindowSummary& window) const override {
    std::string line = fmt::format("loss {:.5f} | psnr {:.2f} dB | codes {}/{}", window.mean_loss,
                                   psnr_from_mse(window.mean_metrics.at(0)), codes_in_use_,
                                   options_.config.codebook_size);
    if (perceptual_) line += fmt::format(" | perceptual {:.4f}", window.mean_metrics.at(1));
    if (discriminator_)
      line += fmt::format(" | G {:.3f} × {:.3g} | D {:.3f}", window.mean_metrics.at(2), window.mean_metrics.at(4),
                          window.mean_metrics.at(3));
    return line;
  }

  void record(const WindowSummary& window, Json& record) const override {
    record["loss"] = window.mean_loss;
    record["reconstruction_mse"] = window.mean_metrics.at(0);
    record["psnr_db"] = psnr_from_mse(window.mean_metrics.at(0));
    record["codes_in_use"] = codes_in_use_;
    if (perceptual_) record["perceptual_loss"] = window.mean_metrics.at(1);
    if (discriminator_) {
      record["generator_adversarial_loss"] = window.mean_metrics.at(2);
      record["discriminator_loss"] = window.mean_metrics.at(3);
      record["adaptive_weight"] = window.mean_metrics.at(4);
    }
  }

  std::vector<torch::Tensor> extra_tensors() const override {
    std::vector<torch::Tensor> tensors;
    if (discriminator_) {
      for (const auto& parameter : discriminator_->parameters()) tensors.push_back(parameter);
      for (const auto& moment : discriminator_optimizer_->moments()) tensors.push_back(moment);
    }
    return tensors;
  }

  void write_checkpoint(CheckpointWriter& checkpoint) const override {
    checkpoint.add_tensor("trainer.code_usage", code_usage_);
    checkpoint.set("tokenizer_config", dump_json(options_.config.to_json()));
    checkpoint.set("tokenizer_losses", dump_json(loss_settings(options_, perceptual_sha256_)));
    if (discriminator_) {
      checkpoint.add_module(*discriminator_, "discriminator.");
      discriminator_optimizer_->save(checkpoint);
    }
  }

  void write_model() const override {
    write_model_config(model_);
    save_tokenizer_weights(model_, tokenizer_);
  }

  std::vector<std::string> settings() const override {
    return {"tokenizer_config=" + dump_json(options_.config.to_json()),
            "tokenizer_losses=" + dump_json(loss_settings(options_, perceptual_sha256_))};
  }

  int64_t codes_used() const { return codes_used_; }

 private:
  torch::Tensor images_of(const std::vector<int64_t>& indices) const {
    const torch::Tensor index = torch::tensor(indices, torch::kLong);
    return tokenizer_->pad_to_multiple(data_.images.index_select(0, index)).to(options_.device);
  }

  // One discriminator update on this rank's shard (gradients averaged over ranks); returns its
  // loss (without the R1 term), detached.
  torch::Tensor discriminator_step(const torch::Tensor& real, const torch::Tensor& fake) {
    discriminator_optimizer_->zero_grad();
    const torch::Tensor real_input = real.detach().requires_grad_(options_.r1_weight > 0);
    const torch::Tensor real_logits = discriminator_->forward(real_input);
    const torch::Tensor loss = discriminator_loss(real_logits, discriminator_->forward(fake));
    torch::Tensor total = loss;
    if (options_.r1_weight > 0) total = total + 0.5 * options_.r1_weight * r1_penalty(real_logits, real_input);
    total.backward();
    if (options_.group->world_size() > 1) options_.group->average_gradients(discriminator_optimizer_->parameters());
    discriminator_optimizer_->step(options_.discriminator_lr);
    return loss.detach();
  }

  // VQGAN's adaptive weight: |∇ fidelity| / (|∇ adversarial| + 1e-4) at the decoder's last kernel,
  // clamped to [0, 1e4], without a graph. Over ranks, the gradients of the global batch's means.
  torch::Tensor adaptive_weight(const torch::Tensor& fidelity, const torch::Tensor& adversarial) {
    const torch::Tensor& kernel = tokenizer_->decoder->output_weight();
    std::vector<torch::Tensor> gradients{
        torch::autograd::grad({fidelity}, {kernel}, {}, /*retain_graph=*/true)[0].detach(),
        torch::autograd::grad({adversarial}, {kernel}, {}, /*retain_graph=*/true)[0].detach()};
    if (const int world = options_.group->world_size(); world > 1) {
      options_.group->all_reduce_sum(gradients);  // equal shards: the sum over ranks is world × the mean's
      for (torch::Tensor& gradient : gradients) gradient /= world;
    }
    return (gradients[0].norm() / (gradients[1].norm() + 1e-4)).clamp(0, 1e4).detach();
  }

  TokenizerTrainOptions& options_;
  std::unique_ptr<PerceptualLoss> perceptual_;
  std::string perceptual_sha256_;  // from the checkpoint when resuming, else the network's
  PatchDiscriminator discriminator_{nullptr};
  std::unique_ptr<AdamWOptimizer> discriminator_optimizer_;
  LabeledImages data_;
  ModelConfig model_;
  mutable VQTokenizer tokenizer_{nullptr};  // saving takes the module holder by reference
  torch::Tensor code_usage_, latents_;
  int64_t codes_in_use_ = 0, codes_used_ = 0;
};

}  // namespace

TokenizerTrainResult train_tokenizer(const TokenizerTrainOptions& requested) {
  TokenizerTrainOptions options = requested;
  TokenizerStage stage(options);
  const TrainingRunResult run = run_training(stage, options);
  TokenizerTrainResult result;
  static_cast<TrainingRunResult&>(result) = run;
  result.last_psnr = run.last_metrics.empty() ? 0.0 : psnr_from_mse(run.last_metrics[0]);
  result.codes_used = stage.codes_used();
  return result;
}

}  // namespace maskgit
