#include "training/tokenizer_trainer.h"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>

#include "common/error.h"
#include "compat/torch_compat.h"
#include "data/batcher.h"
#include "io/atomic_file.h"
#include "io/tensor_io.h"
#include "model/model_dir.h"
#include "tokenizer/vqgan.h"
#include "training/distributed.h"

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
  }

  int64_t prepare() override {
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

    torch::manual_seed(options_.seed);  // parameter initialisation, the same on every rank
    tokenizer_ = VQTokenizer(options_.config);
    tokenizer_->to(options_.device);
    tokenizer_->train();
    code_usage_ = torch::zeros({options_.config.codebook_size}, torch::kLong);
    return data_.images.size(0);
  }

  int64_t total_steps(int64_t) const override { return options_.steps; }
  torch::nn::Module& module() override { return *tokenizer_; }

  void load_state(const CheckpointReader& checkpoint) override {
    load_module_state(*tokenizer_, checkpoint.file(), checkpoint.path(), "model.");
    code_usage_ = checkpoint.tensor("trainer.code_usage").to(torch::kLong);
    if (code_usage_.dim() != 1 || code_usage_.numel() != options_.config.codebook_size)
      checkpoint.fail(fmt::format("\"trainer.code_usage\" has {} entries, the codebook {}", code_usage_.numel(),
                                  options_.config.codebook_size));
  }

  // The codebook starts on encoder outputs of the first global batch, so that every code
  // starts where data lives (each rank encodes its shard; all-gathered in rank order, they are
  // the global batch's, whatever the number of ranks).
  void initialise(const StepBatch& first_batch) override {
    torch::NoGradGuard no_grad;
    const torch::Tensor latents =
        options_.group->all_gather(flat_latents(tokenizer_->encoder(images_of(first_batch.shard_indices()))));
    reseed_codes(tokenizer_->quantizer->codebook, torch::arange(options_.config.codebook_size, torch::kLong), latents,
                 mix_seed(options_.seed, 0xC0DEB00C));
  }

  std::string describe(int64_t dataset_size) const override {
    return fmt::format("tokenizer: {} parameters, codebook {}×{}, {} tokens per image, {} training images",
                       count_parameters(*tokenizer_), options_.config.codebook_size, options_.config.embedding_dim,
                       tokenizer_->grid_size(model_.image_height) * tokenizer_->grid_size(model_.image_width),
                       dataset_size);
  }

  StepOutput forward(const StepBatch& batch) override {
    const torch::Tensor images = images_of(batch.shard_indices());
    const Reconstruction out = tokenizer_->forward(images);
    const torch::Tensor reconstruction_loss = (out.images - images).pow(2).mean();
    StepOutput step;
    step.loss = reconstruction_loss + options_.codebook_weight * out.quantized.codebook_loss +
                options_.commitment_weight * out.quantized.commitment_loss;
    step.weight = static_cast<double>(batch.shard_size);
    step.metrics = {reconstruction_loss};
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
    return fmt::format("loss {:.5f} | psnr {:.2f} dB | codes {}/{}", window.mean_loss,
                       psnr_from_mse(window.mean_metrics.at(0)), codes_in_use_, options_.config.codebook_size);
  }

  void record(const WindowSummary& window, Json& record) const override {
    record["loss"] = window.mean_loss;
    record["reconstruction_mse"] = window.mean_metrics.at(0);
    record["psnr_db"] = psnr_from_mse(window.mean_metrics.at(0));
    record["codes_in_use"] = codes_in_use_;
  }

  void write_checkpoint(CheckpointWriter& checkpoint) const override {
    checkpoint.add_tensor("trainer.code_usage", code_usage_);
    checkpoint.set("tokenizer_config", dump_json(options_.config.to_json()));
  }

  void write_model() const override {
    write_model_config(model_);
    save_tokenizer_weights(model_, tokenizer_);
  }

  std::vector<std::string> settings() const override {
    return {"tokenizer_config=" + dump_json(options_.config.to_json()),
            fmt::format("codebook_weight={:.17g} commitment_weight={:.17g} dead_code_window={}", options_.codebook_weight,
                        options_.commitment_weight, options_.dead_code_window)};
  }

  int64_t codes_used() const { return codes_used_; }

 private:
  torch::Tensor images_of(const std::vector<int64_t>& indices) const {
    const torch::Tensor index = torch::tensor(indices, torch::kLong);
    return tokenizer_->pad_to_multiple(data_.images.index_select(0, index)).to(options_.device);
  }

  TokenizerTrainOptions& options_;
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
