#include "training/transformer_trainer.h"
#include "common/console.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "common/error.h"
#include "compat/torch_compat.h"
#include "data/batcher.h"
#include "decoding/schedule.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "io/tensor_io.h"
#include "model/model_dir.h"
#include "tokenizer/pipeline.h"
#include "tokenizer/token_file.h"
#include "training/adam.h"
#include "training/interrupt.h"
#include "training/metrics_log.h"
#include "training/progress.h"
#include "training/run_guard.h"
#include "runtime/threads.h"

namespace maskgit {
namespace fs = std::filesystem;

std::string TransformerTrainOptions::state_path() const {
  return (fs::path(model_dir) / "train-state" / "transformer.safetensors").string();
}

std::string TransformerTrainOptions::token_cache_path() const {
  return (fs::path(model_dir) / "train-state" / ("tokens-" + data.split + ".safetensors")).string();
}

std::string TransformerTrainOptions::resolved_metrics_path() const {
  if (!metrics_path.empty()) return metrics_path;
  return (fs::path(model_dir) / "train-state" / "transformer-metrics.jsonl").string();
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

// FNV-1a over the tokenizer weights: the token cache is valid only for the same tokenizer.
std::string fingerprint_file(const std::string& path) {
  const std::string bytes = read_file_bytes(path);
  uint64_t hash = 1469598103934665603ULL;
  for (unsigned char c : bytes) hash = (hash ^ c) * 1099511628211ULL;
  return fmt::format("{:016x}", hash);
}

TokenGrid cached_tokens(const TransformerTrainOptions& options, const ModelConfig& model, bool quiet) {
  const std::string cache = options.token_cache_path();
  const std::string fingerprint = fingerprint_file(model.path_of(kTokenizerWeightsFile));
  const std::string fingerprint_path = cache + ".fingerprint";
  if (file_exists(cache) && file_exists(fingerprint_path) &&
      read_file_bytes(fingerprint_path) == fingerprint + " " + options.data.path + " " + std::to_string(options.data.limit)) {
    return read_token_file(cache);
  }
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
  write_file_atomic(fingerprint_path, fingerprint + " " + options.data.path + " " + std::to_string(options.data.limit));
  if (!quiet)
    print_stderr("tokenized {} images in {:.1f} s, cached in {}\n", grid.ids.size(0),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), cache);
  return grid;
}

}  // namespace

TransformerTrainResult train_transformer(const TransformerTrainOptions& requested) {
  TransformerTrainOptions options = requested;
  const std::string state_path = options.state_path();
  const std::string weights_path = (fs::path(options.model_dir) / kTransformerWeightsFile).string();
  check_learning_rate(options.learning_rate, options.beta1, options.weight_decay);
  refuse_to_replace_run("transformer", options.model_dir, state_path, weights_path, options.resume, options.overwrite);
  ModelConfig model = read_model_config(options.model_dir);
  if (!model.tokenizer)
    throw_bad_input(fmt::format("{}: train the tokenizer stage first (no \"tokenizer\" section)",
                                model.path_of(kModelConfigFile)));
  SafetensorsFile resume_state;
  int64_t start_step = 0;
  if (options.resume) {
    if (!file_exists(state_path))
      throw InvalidArgument("resume", fmt::format("no checkpoint at {}", state_path), ExitCode::bad_input);
    try {
      resume_state = read_safetensors(state_path);
    } catch (const SafetensorsError& e) {
      throw_bad_input(e.what());
    }
    try {
      options.config = TransformerConfig::from_json(parse_json(resume_state.metadata.at("transformer_config")));
      start_step = std::stoll(resume_state.metadata.at("step"));
      options.seed = metadata_seed(resume_state, state_path);
      options.batch_size = std::stoll(resume_state.metadata.at("batch_size"));
    } catch (const std::exception& e) {
      throw_bad_input(fmt::format("{}: bad or missing checkpoint metadata ({})", state_path, e.what()));
    }
    resume_data_limit(options.data, resume_state, state_path);
  } else {
    VQTokenizer probe(*model.tokenizer);
    options.config.codebook_size = model.tokenizer->codebook_size;
    options.config.num_classes = model.num_classes();
    options.config.grid_height = probe->grid_size(model.image_height);
    options.config.grid_width = probe->grid_size(model.image_width);
  }
  options.config.validate();
  const TransformerConfig& config = options.config;
  remove_stale_temporaries({state_path, options.resolved_metrics_path(), weights_path, model.path_of(kModelConfigFile),
                            options.token_cache_path(), options.token_cache_path() + ".fingerprint"});

  const TokenGrid tokens = cached_tokens(options, model, options.quiet);
  const torch::Tensor ids = tokens.ids.flatten(1);  // [M, N]
  const torch::Tensor labels = tokens.labels;
  const int64_t dataset_size = ids.size(0);
  if (ids.size(1) != config.tokens_per_image())
    throw_bad_input(fmt::format("{}: token grids have {} cells, the transformer expects {}",
                                options.token_cache_path(), ids.size(1), config.tokens_per_image()));
  if (labels.max().item<int64_t>() >= config.num_classes)
    throw_bad_input(fmt::format("{}: labels exceed the model's {} classes", options.data.path, config.num_classes));
  if (dataset_size < options.batch_size)
    throw InvalidArgument("batch_size",
                          fmt::format("{} is larger than the dataset ({} images)", options.batch_size, dataset_size));

  BidirectionalTransformer transformer(config);
  transformer->reset_parameters_like_release(options.seed);
  transformer->to(options.device);
  transformer->train();
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (const auto& item : transformer->named_parameters()) named.emplace_back(item.key(), item.value());
  AdamOptions adam_options;
  adam_options.beta1 = options.beta1;
  adam_options.beta2 = options.beta2;
  adam_options.weight_decay = options.weight_decay;
  Adam adam(named, adam_options);
  std::vector<std::pair<std::string, torch::Tensor>> ema;
  if (options.ema_decay > 0)
    for (const auto& [name, parameter] : named) ema.emplace_back(name, parameter.detach().clone());

  if (options.resume) {
    load_module_state(*transformer, resume_state, state_path, "model.");
    adam.load_state(resume_state, state_path);
    for (auto& [name, value] : ema) {
      const SafetensorsEntry* entry = resume_state.find("ema." + name);
      if (!entry) throw_bad_input(fmt::format("{}: missing tensor \"ema.{}\" (was the run started with --ema?)", state_path, name));
      value.copy_(entry_to_tensor(*entry));
    }
    if (!options.quiet)
      print_stderr("resuming from step {} of {} (configuration, seed and batch size from the checkpoint)\n",
                 start_step, state_path);
  }

  model.transformer = config;
  ensure_directory(fs::path(state_path).parent_path().string());
  if (!options.resume) discard_earlier_checkpoint(state_path);
  MetricsLog metrics(options.resolved_metrics_path(), options.resume ? start_step : -1);

  int64_t last_checkpoint = options.resume ? start_step : -1;
  auto save_checkpoint = [&](int64_t steps_done) {
    // Never write a model that is not finite (the loss is checked every step; this also
    // covers weights, optimizer moments and averages that overflowed in the last update).
    std::vector<torch::Tensor> tensors = module_tensors(*transformer);
    for (const torch::Tensor& moment : adam.moments()) tensors.push_back(moment);
    for (const auto& [name, value] : ema) tensors.push_back(value);
    if (!all_finite(tensors))
      throw_diverged("transformer", steps_done, "the weights are not finite after the update", last_checkpoint,
                     state_path, options.learning_rate);
    SafetensorsFile state;
    append_module_state(state, *transformer, "model.");
    adam.save_state(state);
    for (const auto& [name, value] : ema) state.tensors.push_back(tensor_to_entry("ema." + name, value));
    state.metadata["step"] = std::to_string(steps_done);
    state.metadata["seed"] = std::to_string(options.seed);
    state.metadata["batch_size"] = std::to_string(options.batch_size);
    state.metadata["transformer_config"] = dump_json(config.to_json());
    state.metadata["limit"] = std::to_string(options.data.limit);
    write_safetensors(state_path, state);
    write_model_config(model);
    if (ema.empty()) {
      save_transformer_weights(model, transformer);
    } else {
      BidirectionalTransformer averaged(config);
      torch::NoGradGuard no_grad;
      auto parameters = averaged->named_parameters();
      for (const auto& [name, value] : ema) parameters[name].copy_(value);
      save_transformer_weights(model, averaged);
    }
    last_checkpoint = steps_done;
  };

  TransformerTrainResult result;
  result.steps_done = start_step;
  int64_t parameter_count = 0;
  for (const auto& p : transformer->parameters()) parameter_count += p.numel();
  if (!options.quiet)
    print_stderr("transformer: {} parameters, {} layers × {} hidden, sequence {}, vocabulary {}, {} training grids\n",
               parameter_count, config.num_layers, config.hidden_size, config.sequence_length(),
               config.vocabulary_size(), dataset_size);

  Batcher batcher(dataset_size, options.batch_size, options.seed);
  const int64_t batches_per_epoch = batcher.batches_per_epoch();
  ProgressWindow window;
  const auto started = std::chrono::steady_clock::now();
  for (int64_t step = start_step; step < options.steps; ++step) {
    adapt_cpu_threads();
    if (interrupt_requested()) {
      save_checkpoint(step);
      result.interrupted = true;
      if (!options.quiet) print_stderr("interrupted: checkpoint saved at step {} ({})\n", step, state_path);
      break;
    }
    // Every random choice of a step comes from a generator seeded by (seed, step), so a
    // resumed run makes the same choices an uninterrupted one would.
    auto generator = compat::make_cpu_generator(mix_seed(options.seed, static_cast<uint64_t>(step) + 1));
    const auto indices = batcher.batch_indices(step / batches_per_epoch, step % batches_per_epoch);
    const torch::Tensor index = torch::tensor(indices, torch::kLong);
    const torch::Tensor target = ids.index_select(0, index);
    torch::Tensor classes = labels.index_select(0, index) + config.codebook_size;
    if (config.no_class_token && options.class_dropout > 0) {
      const torch::Tensor dropped = torch::rand({classes.size(0)}, generator) < options.class_dropout;
      classes = torch::where(dropped, torch::full_like(classes, config.no_class_token_id()), classes);
    }
    const torch::Tensor masked = sample_training_mask(target.size(0), target.size(1), generator);
    const torch::Tensor inputs = torch::where(masked, torch::full_like(target, config.mask_token()), target);
    // Dropout inside the model draws from LibTorch's global generator; seed it per step too.
    torch::manual_seed(mix_seed(options.seed, static_cast<uint64_t>(step) + 0x5EED));

    const torch::Tensor logits = transformer->image_logits(inputs.to(options.device), classes.to(options.device));
    const torch::Tensor masked_device = masked.to(options.device);
    const torch::Tensor masked_logits = logits.index({masked_device});            // [M, K]
    const torch::Tensor masked_targets = target.to(options.device).index({masked_device});  // [M]
    const torch::Tensor loss = torch::nn::functional::cross_entropy(
        masked_logits.to(torch::kFloat32), masked_targets,
        torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(options.label_smoothing));
    adam.zero_grad();
    loss.backward();
    const double learning_rate = warmup_cosine_lr(step, options.steps, options.warmup_steps, options.learning_rate,
                                                  options.final_lr_fraction);
    adam.step(learning_rate);
    if (!ema.empty()) {
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < ema.size(); ++i) ema[i].second.mul_(options.ema_decay).add_(named[i].second, 1.0 - options.ema_decay);
    }

    // Read after the update was queued, as before; a step whose loss is not finite is never
    // saved (its update is garbage, and the run stops).
    const double loss_value = loss.item<double>();
    if (!std::isfinite(loss_value))
      throw_diverged("transformer", step + 1, describe_non_finite_loss(loss_value), last_checkpoint, state_path,
                     options.learning_rate);
    const double accuracy = (masked_logits.argmax(1) == masked_targets).to(torch::kFloat32).mean().item<double>();
    window.add(loss_value, accuracy, options.batch_size);
    const int64_t steps_done = step + 1;
    result.steps_done = steps_done;
    if (steps_done % options.log_every == 0 || steps_done == options.steps) {
      const ProgressWindow::Summary summary = window.take(options.steps - steps_done);
      if (result.first_loss == 0) result.first_loss = summary.mean_loss;
      result.last_loss = summary.mean_loss;
      result.last_masked_accuracy = summary.mean_metric;
      if (!options.quiet)
        print_stderr("transformer step {}/{} | loss {:.4f} | masked acc {:.3f} | lr {:.2e} | {:.0f} img/s | eta {}\n",
                   steps_done, options.steps, summary.mean_loss, summary.mean_metric, learning_rate,
                   summary.items_per_second, format_duration(summary.eta_seconds));
      Json record = Json::object();
      record["step"] = steps_done;
      record["loss"] = summary.mean_loss;
      record["masked_accuracy"] = summary.mean_metric;
      record["learning_rate"] = learning_rate;
      record["images_per_second"] = summary.items_per_second;
      record["elapsed_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      metrics.write(record);
    }
    const bool stopping = options.stop_after >= 0 && steps_done - start_step >= options.stop_after;
    if (steps_done % options.checkpoint_every == 0 || steps_done == options.steps || stopping) save_checkpoint(steps_done);
    if (stopping) break;
  }
  if (start_step >= options.steps && !options.quiet)
    print_stderr("nothing to do: the checkpoint is already at step {} (raise --steps to continue)\n", start_step);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

}  // namespace maskgit
