#include "training/transformer_trainer.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "common/console.h"
#include "common/error.h"
#include "compat/torch_compat.h"
#include "data/batcher.h"
#include "decoding/schedule.h"
#include "io/atomic_file.h"
#include "io/file_hash.h"
#include "io/tensor_io.h"
#include "model/model_dir.h"
#include "tokenizer/pipeline.h"
#include "tokenizer/token_file.h"
#include "training/distributed.h"

namespace maskgit {
namespace fs = std::filesystem;

TransformerTrainOptions::TransformerTrainOptions() {
  steps = 10000;
  batch_size = 256;
  learning_rate = 1e-3;
  warmup_steps = 500;
  final_lr_fraction = 0.1;
  beta2 = 0.96;
  weight_decay = 4.5e-2;
}

std::string TransformerTrainOptions::state_path() const { return training_state_path(model_dir, "transformer"); }

std::string TransformerTrainOptions::token_cache_path() const {
  return (fs::path(model_dir) / "train-state" / ("tokens-" + data.split + ".safetensors")).string();
}

std::string TransformerTrainOptions::resolved_metrics_path() const {
  return metrics_path.empty() ? training_metrics_path(model_dir, "transformer") : metrics_path;
}

torch::Tensor sample_training_mask(int64_t batch, int64_t tokens, at::Generator& generator) {
  const MaskSchedule cosine;
  torch::Tensor ratios = torch::rand({batch}, generator);
  std::vector<int64_t> counts(static_cast<size_t>(batch));
  auto ratio_values = ratios.accessor<float, 1>();
  for (int64_t b = 0; b < batch; ++b) {
    const double fraction = cosine.gamma(ratio_values[b], tokens);
    counts[static_cast<size_t>(b)] =
        std::clamp<int64_t>(static_cast<int64_t>(std::ceil(fraction * static_cast<double>(tokens))), 1, tokens);
  }
  // Rank of each position in a random order; the n lowest ranks are masked.
  torch::Tensor ranks = torch::rand({batch, tokens}, generator).argsort(/*dim=*/1, /*descending=*/false).argsort(/*dim=*/1, /*descending=*/false);
  return ranks < torch::tensor(counts, torch::kLong).unsqueeze(1);
}

namespace {

TokenGrid cached_tokens(const TransformerTrainOptions& options, const ModelConfig& model, bool quiet) {
  const std::string cache = options.token_cache_path();
  // The token cache is valid only for the same tokenizer: its weights' SHA-256 (streamed).
  const std::string fingerprint = sha256_file(model.path_of(kTokenizerWeightsFile));
  const std::string fingerprint_path = cache + ".fingerprint";
  const std::string key = fingerprint + " " + options.data.path + " " + std::to_string(options.data.limit);
  if (file_exists(cache) && file_exists(fingerprint_path) && read_file_bytes(fingerprint_path) == key)
    return read_token_file(cache);
  const auto started = std::chrono::steady_clock::now();
  DatasetSpec spec = options.data;
  spec.channels = static_cast<int>(model.image_channels);
  spec.width = static_cast<int>(model.image_width);
  spec.height = static_cast<int>(model.image_height);
  const LabeledImages data = load_dataset(spec);
  VQTokenizer tokenizer = load_tokenizer(model, options.device);
  TokenGrid grid;
  grid.ids = encode_in_batches(tokenizer, data.images, 512, options.device);
  grid.labels = data.labels;
  grid.image_height = model.image_height;
  grid.image_width = model.image_width;
  grid.codebook_size = tokenizer->config().codebook_size;
  ensure_directory(fs::path(cache).parent_path().string());
  write_token_file(cache, grid);
  write_file_atomic(fingerprint_path, key);
  if (!quiet)
    print_stderr("tokenized {} images in {:.1f} s, cached in {}\n", grid.ids.size(0),
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), cache);
  return grid;
}

// Whether two models' tokenizers give every image the same token grid: the same encoder and
// codebook (a decoder-only fine-tune keeps both). For a note only: true when `a`'s tokenizer
// cannot be read (nothing to say), false when the configurations differ.
bool same_codes(const ModelConfig& a, const ModelConfig& b) {
  if (!a.tokenizer) return true;
  if (!b.tokenizer || a.tokenizer->to_json() != b.tokenizer->to_json()) return false;
  VQTokenizer first{nullptr};
  try {
    first = load_tokenizer(a, torch::kCPU);
  } catch (const std::exception&) {
    return true;
  }
  VQTokenizer second = load_tokenizer(b, torch::kCPU);
  const auto theirs = second->named_parameters();
  for (const auto& item : first->named_parameters())
    if (item.key().rfind("decoder.", 0) != 0 && !torch::equal(item.value(), theirs[item.key()])) return false;
  return true;
}

// The checkpoint metadata that records a run's loss settings and EMA decay (JSON object:
// label_smoothing, class_dropout, ema): a resumed run keeps them.
constexpr const char* kTrainingSettingsKey = "transformer_training";

class TransformerStage final : public TrainingStage {
 public:
  explicit TransformerStage(TransformerTrainOptions& options) : options_(options) {}

  std::string name() const override { return "transformer"; }
  std::string output_dir() const override { return options_.model_dir; }
  std::string weights_path() const override { return (fs::path(options_.model_dir) / kTransformerWeightsFile).string(); }
  std::vector<std::string> written_files() const override {
    return {weights_path(), (fs::path(options_.model_dir) / kModelConfigFile).string(), options_.token_cache_path(),
            options_.token_cache_path() + ".fingerprint"};
  }

  void read_settings(const CheckpointReader& checkpoint) override {
    options_.config = checkpoint.parsed(
        "transformer_config", [](const Json& json) { return TransformerConfig::from_json(json); });
    if (checkpoint.has(kTrainingSettingsKey)) {
      // The loss settings and the EMA decay the run was started with (a value given again was
      // compared already: resume_checks).
      checkpoint.parsed(kTrainingSettingsKey, [&](const Json& json) {
        const auto number = [&](const char* key, double maximum, bool maximum_allowed) {
          if (!json.is_object() || !json.contains(key) || !json.at(key).is_number())
            throw std::runtime_error(fmt::format("no number \"{}\"", key));
          const double value = json.at(key).get<double>();
          if (!std::isfinite(value) || value < 0 || value > maximum || (value == maximum && !maximum_allowed))
            throw std::runtime_error(fmt::format("\"{}\" is {}, outside [0, {}{}", key, value, maximum,
                                                 maximum_allowed ? "]" : ")"));
          return value;
        };
        options_.label_smoothing = number("label_smoothing", 1.0, false);
        options_.class_dropout = number("class_dropout", 1.0, true);
        options_.ema_decay = number("ema", 1.0, false);
        return 0;
      });
    } else if (options_.ema_decay == 0) {
      // A checkpoint of an earlier version, which did not record the decay: a run without --ema
      // would drop its averaged weights without a word.
      for (const SafetensorsEntry& entry : checkpoint.file().tensors)
        if (entry.name.rfind("ema.", 0) == 0)
          throw InvalidArgument("ema", fmt::format("the checkpoint {} holds averaged weights but not their decay (an "
                                                   "earlier version's): give the decay again to keep them, or start a new run",
                                                   checkpoint.path()));
    }
  }

  int64_t prepare() override {
    model_ = read_model_config(options_.model_dir);
    if (!model_.tokenizer)
      throw_bad_input(fmt::format("{}: train the tokenizer stage first (no \"tokenizer\" section)",
                                  model_.path_of(kModelConfigFile)));
    TransformerConfig& config = options_.config;
    ModelConfig init;
    const bool start_from_model = !options_.init_from.empty() && !options_.resume;  // resumed: the checkpoint's weights
    if (!options_.resume) {
      VQTokenizer probe(*model_.tokenizer);
      const int64_t codebook = model_.tokenizer->codebook_size;
      const int64_t grid_height = probe->grid_size(model_.image_height);
      const int64_t grid_width = probe->grid_size(model_.image_width);
      if (start_from_model) {
        init = read_model_config(options_.init_from);
        if (!init.transformer)
          throw InvalidArgument("init_from", fmt::format("{} has no transformer", options_.init_from));
        if (const std::string why = transformer_mismatch(*init.transformer, model_); !why.empty())
          throw InvalidArgument("init_from", fmt::format("{}'s transformer does not fit the tokenizer of {} ({})",
                                                         options_.init_from, options_.model_dir, why));
        if (init.class_names != model_.class_names)
          throw InvalidArgument("init_from", fmt::format("{}'s classes {} are not those of {}: {}", options_.init_from,
                                                         dump_json(Json(init.class_names)), options_.model_dir,
                                                         dump_json(Json(model_.class_names))));
        if (!init.transformer->no_class_token && options_.class_dropout > 0)
          throw InvalidArgument("class_dropout", fmt::format("{}'s transformer has no no-class token to drop the class to "
                                                             "(give 0)",
                                                             options_.init_from));
        const double dropout = config.dropout, attention_dropout = config.attention_dropout;
        config = *init.transformer;
        if (options_.dropout_from_options) {
          config.dropout = dropout;
          config.attention_dropout = attention_dropout;
        }
        // The starting weights, read (and checked against their configuration) before any work.
        start_ = load_transformer(init, torch::kCPU);
        if (!options_.quiet && options_.group->is_main() && !same_codes(init, model_))
          print_note("{}: its transformer learned the codes of another tokenizer (encoder or codebook differ from "
                     "{}'s): the same ids mean other patches here, so this is barely a head start\n",
                     options_.init_from, options_.model_dir);
      }
      config.codebook_size = codebook;
      config.num_classes = model_.num_classes();
      config.grid_height = grid_height;
      config.grid_width = grid_width;
    }
    config.validate();

    // Rank 0 tokenizes the dataset (or reads the cache) and sends the grids to every rank.
    DataParallelGroup& group = *options_.group;
    TokenGrid tokens;
    group.run_on_main("tokenizing the training data", [&] { tokens = cached_tokens(options_, model_, options_.quiet); });
    ids_ = broadcast_from_main(group, group.is_main() ? tokens.ids.flatten(1) : torch::Tensor());  // [M, N]
    labels_ = broadcast_from_main(group, tokens.labels);
    if (ids_.size(1) != config.tokens_per_image())
      throw_bad_input(fmt::format("{}: token grids have {} cells, the transformer expects {}",
                                  options_.token_cache_path(), ids_.size(1), config.tokens_per_image()));
    if (labels_.numel() > 0 && (labels_.min().item<int64_t>() < 0 || labels_.max().item<int64_t>() >= config.num_classes))
      throw_bad_input(fmt::format("{}: labels outside the model's {} classes (the token cache of {})",
                                  options_.token_cache_path(), config.num_classes, options_.data.path));

    transformer_ = BidirectionalTransformer(config);
    transformer_->reset_parameters_like_release(options_.seed);
    if (start_from_model) {
      // The starting weights (a fresh run; a resumed one loads its checkpoint over them).
      torch::NoGradGuard no_grad;
      const auto source = start_->named_parameters();
      for (auto& item : transformer_->named_parameters()) item.value().copy_(source[item.key()]);
      start_ = nullptr;
    }
    transformer_->to(options_.device);
    transformer_->train();
    for (const auto& item : transformer_->named_parameters()) named_.emplace_back(item.key(), item.value());
    if (options_.ema_decay > 0)
      for (const auto& [name, parameter] : named_) ema_.emplace_back(name, parameter.detach().clone());
    return ids_.size(0);
  }

  int64_t total_steps(int64_t) const override { return options_.steps; }
  torch::nn::Module& module() override { return *transformer_; }

  void load_state(const CheckpointReader& checkpoint) override {
    load_module_state(*transformer_, checkpoint.file(), checkpoint.path(), "model.");
    torch::NoGradGuard no_grad;
    for (auto& [name, value] : ema_) {
      if (!checkpoint.file().find("ema." + name))
        checkpoint.fail(fmt::format("missing tensor \"ema.{}\" (was the run started with --ema?)", name));
      const torch::Tensor stored = checkpoint.tensor("ema." + name);
      if (stored.sizes() != value.sizes()) checkpoint.fail(fmt::format("tensor \"ema.{}\" has the wrong shape", name));
      value.copy_(stored);
    }
  }

  std::string describe(int64_t dataset_size) const override {
    const TransformerConfig& config = options_.config;
    return fmt::format("transformer: {} parameters, {} layers × {} hidden, sequence {}, vocabulary {}, {} training grids",
                       count_parameters(*transformer_), config.num_layers, config.hidden_size, config.sequence_length(),
                       config.vocabulary_size(), dataset_size);
  }

  StepOutput forward(const StepBatch& batch) override {
    const TransformerConfig& config = options_.config;
    const uint64_t seed = options_.seed;
    const int64_t global = static_cast<int64_t>(batch.global_indices.size());
    // Every random choice of a step comes from a generator seeded by (seed, step), so a resumed
    // run makes the same choices an uninterrupted one would; class dropout and masks are drawn
    // for the whole global batch and each rank takes its rows, so that the run is the same
    // whatever the number of ranks.
    auto generator = compat::make_cpu_generator(mix_seed(seed, static_cast<uint64_t>(batch.step) + 1));
    torch::Tensor classes = labels_.index_select(0, torch::tensor(batch.global_indices, torch::kLong)) + config.codebook_size;
    if (config.no_class_token && options_.class_dropout > 0) {
      const torch::Tensor dropped = torch::rand({global}, generator) < options_.class_dropout;
      classes = torch::where(dropped, torch::full_like(classes, config.no_class_token_id()), classes);
    }
    const torch::Tensor masked = batch.shard_rows(sample_training_mask(global, ids_.size(1), generator));
    classes = batch.shard_rows(classes);
    const torch::Tensor target = ids_.index_select(0, torch::tensor(batch.shard_indices(), torch::kLong));
    const torch::Tensor inputs = torch::where(masked, torch::full_like(target, config.mask_token()), target);
    // Dropout inside the model draws from LibTorch's global generator: seeded per step (and rank).
    const uint64_t dropout_seed = mix_seed(seed, static_cast<uint64_t>(batch.step) + 0x5EED);
    torch::manual_seed(batch.rank == 0 ? dropout_seed : mix_seed(dropout_seed, static_cast<uint64_t>(batch.rank)));

    const torch::Tensor logits = transformer_->image_logits(inputs.to(options_.device), classes.to(options_.device));
    const torch::Tensor masked_device = masked.to(options_.device);
    const torch::Tensor masked_logits = logits.index({masked_device});                          // [M, K]
    const torch::Tensor masked_targets = target.to(options_.device).index({masked_device});   // [M]
    StepOutput step;
    step.loss = torch::nn::functional::cross_entropy(
        masked_logits.to(torch::kFloat32), masked_targets,
        torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(options_.label_smoothing));
    step.weight = static_cast<double>(masked.sum().item<int64_t>());
    step.metrics = {(masked_logits.detach().argmax(1) == masked_targets).to(torch::kFloat32).mean()};
    return step;
  }

  void after_update(int64_t, const torch::Tensor&) override {
    if (ema_.empty()) return;
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < ema_.size(); ++i)
      ema_[i].second.mul_(options_.ema_decay).add_(named_[i].second, 1.0 - options_.ema_decay);
  }

  std::vector<torch::Tensor> extra_tensors() const override {
    std::vector<torch::Tensor> tensors;
    for (const auto& [name, value] : ema_) tensors.push_back(value);
    return tensors;
  }

  std::string progress(const WindowSummary& window) const override {
    return fmt::format("loss {:.4f} | masked acc {:.3f}", window.mean_loss, window.mean_metrics.at(0));
  }

  void record(const WindowSummary& window, Json& record) const override {
    record["loss"] = window.mean_loss;
    record["masked_accuracy"] = window.mean_metrics.at(0);
  }

  void write_checkpoint(CheckpointWriter& checkpoint) const override {
    for (const auto& [name, value] : ema_) checkpoint.add_tensor("ema." + name, value);
    checkpoint.set("transformer_config", dump_json(options_.config.to_json()));
    checkpoint.set(kTrainingSettingsKey, dump_json(Json{{"label_smoothing", options_.label_smoothing},
                                                        {"class_dropout", options_.class_dropout},
                                                        {"ema", options_.ema_decay}}));
  }

  std::vector<std::string> settings() const override {
    return {"transformer_config=" + dump_json(options_.config.to_json()),
            fmt::format("label_smoothing={:.17g} class_dropout={:.17g} ema={:.17g}", options_.label_smoothing,
                        options_.class_dropout, options_.ema_decay),
            "tokenizer=" + dump_json(model_.tokenizer ? model_.tokenizer->to_json() : Json())};
  }

  void write_model() const override {
    ModelConfig model = model_;
    model.transformer = options_.config;
    write_model_config(model);
    if (ema_.empty()) {
      save_transformer_weights(model, transformer_);
      return;
    }
    BidirectionalTransformer averaged(options_.config);
    torch::NoGradGuard no_grad;
    auto parameters = averaged->named_parameters();
    for (const auto& [name, value] : ema_) parameters[name].copy_(value);
    save_transformer_weights(model, averaged);
  }

 private:
  TransformerTrainOptions& options_;
  ModelConfig model_;
  torch::Tensor ids_, labels_;
  mutable BidirectionalTransformer transformer_{nullptr};  // saving takes the module holder by reference
  BidirectionalTransformer start_{nullptr};                // --init-from's weights, until copied
  std::vector<std::pair<std::string, torch::Tensor>> named_, ema_;
};

}  // namespace

TransformerTrainResult train_transformer(const TransformerTrainOptions& requested) {
  TransformerTrainOptions options = requested;
  TransformerStage stage(options);
  const TrainingRunResult run = run_training(stage, options);
  TransformerTrainResult result;
  static_cast<TrainingRunResult&>(result) = run;
  result.last_masked_accuracy = run.last_metrics.empty() ? 0.0 : run.last_metrics[0];
  return result;
}

}  // namespace maskgit
