#include "training/tokenizer_trainer.h"
#include "common/console.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "common/error.h"
#include "compat/torch_compat.h"
#include "data/batcher.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "io/tensor_io.h"
#include "model/model_dir.h"
#include "tokenizer/vqgan.h"
#include "training/adam.h"
#include "training/interrupt.h"
#include "training/metrics_log.h"
#include "training/progress.h"
#include "training/run_guard.h"
#include "runtime/threads.h"

namespace maskgit {
namespace fs = std::filesystem;

std::string TokenizerTrainOptions::state_path() const {
  return (fs::path(model_dir) / "train-state" / "tokenizer.safetensors").string();
}

std::string TokenizerTrainOptions::resolved_metrics_path() const {
  if (!metrics_path.empty()) return metrics_path;
  return (fs::path(model_dir) / "train-state" / "tokenizer-metrics.jsonl").string();
}

namespace {

double psnr_from_mse(double mse) { return 10.0 * std::log10(1.0 / std::max(mse, 1e-12)); }

int64_t metadata_int(const SafetensorsFile& file, const std::string& key, const std::string& source) {
  auto it = file.metadata.find(key);
  if (it == file.metadata.end()) throw_bad_input(fmt::format("{}: missing metadata \"{}\"", source, key));
  try {
    size_t used = 0;
    const int64_t value = std::stoll(it->second, &used);
    if (used == it->second.size()) return value;
  } catch (const std::exception&) {
  }
  throw_bad_input(fmt::format("{}: metadata \"{}\" is not an integer", source, key));
}

// Flattened encoder outputs [M, D] of `images`, for seeding and restarting codes.
torch::Tensor flat_latents(const torch::Tensor& latents) {
  return latents.detach().permute({0, 2, 3, 1}).reshape({-1, latents.size(1)});
}

// Replaces the rows of `codebook` selected by `rows` with random encoder outputs.
void reseed_codes(torch::Tensor& codebook, const torch::Tensor& rows, const torch::Tensor& latents,
                  uint64_t seed) {
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

}  // namespace

TokenizerTrainResult train_tokenizer(const TokenizerTrainOptions& requested) {
  TokenizerTrainOptions options = requested;
  const std::string state_path = options.state_path();
  const std::string weights_path = (fs::path(options.model_dir) / kTokenizerWeightsFile).string();
  check_learning_rate(options.learning_rate, AdamOptions{}.beta1, AdamOptions{}.weight_decay);
  refuse_to_replace_run("tokenizer", options.model_dir, state_path, weights_path, options.resume, options.overwrite);
  remove_stale_temporaries({state_path, options.resolved_metrics_path(), weights_path,
                            (fs::path(options.model_dir) / kModelConfigFile).string()});
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
    // Architecture, seed and batch size come from the checkpoint so that the resumed run
    // continues the same data order and model.
    auto config_text = resume_state.metadata.find("tokenizer_config");
    if (config_text == resume_state.metadata.end())
      throw_bad_input(fmt::format("{}: missing metadata \"tokenizer_config\"", state_path));
    try {
      options.config = TokenizerConfig::from_json(parse_json(config_text->second));
    } catch (const std::exception& e) {
      throw_bad_input(fmt::format("{}: bad tokenizer_config: {}", state_path, e.what()));
    }
    start_step = metadata_int(resume_state, "step", state_path);
    options.seed = metadata_seed(resume_state, state_path);
    options.batch_size = metadata_int(resume_state, "batch_size", state_path);
    resume_data_limit(options.data, resume_state, state_path);
  }
  options.config.validate();

  options.data.channels = static_cast<int>(options.config.channels);
  LabeledImages data = load_dataset(options.data);
  const int64_t dataset_size = data.images.size(0);
  if (dataset_size < options.batch_size)
    throw InvalidArgument("batch_size",
                          fmt::format("{} is larger than the dataset ({} images)", options.batch_size, dataset_size));

  ModelConfig model;
  model.directory = options.model_dir;
  if (file_exists(model.path_of(kModelConfigFile))) model = read_model_config(options.model_dir);
  model.image_height = data.images.size(2);
  model.image_width = data.images.size(3);
  model.image_channels = options.config.channels;
  model.class_names = data.class_names;
  model.tokenizer = options.config;

  torch::manual_seed(options.seed);  // parameter initialisation
  VQTokenizer tokenizer(options.config);
  tokenizer->to(options.device);
  tokenizer->train();
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (const auto& item : tokenizer->named_parameters()) named.emplace_back(item.key(), item.value());
  Adam adam(named, AdamOptions{});
  const int64_t codebook_size = options.config.codebook_size;
  torch::Tensor code_usage = torch::zeros({codebook_size}, torch::kLong);

  Batcher batcher(dataset_size, options.batch_size, options.seed);
  const int64_t batches_per_epoch = batcher.batches_per_epoch();
  auto batch_images = [&](int64_t step) {
    const auto indices = batcher.batch_indices(step / batches_per_epoch, step % batches_per_epoch);
    torch::Tensor index = torch::tensor(indices, torch::kLong);
    return tokenizer->pad_to_multiple(data.images.index_select(0, index)).to(options.device);
  };

  if (options.resume) {
    load_module_state(*tokenizer, resume_state, state_path, "model.");
    adam.load_state(resume_state, state_path);
    const SafetensorsEntry* usage = resume_state.find("trainer.code_usage");
    if (!usage) throw_bad_input(fmt::format("{}: missing tensor \"trainer.code_usage\"", state_path));
    code_usage = entry_to_tensor(*usage).to(torch::kLong);
    if (code_usage.numel() != codebook_size)
      throw_bad_input(fmt::format("{}: \"trainer.code_usage\" has the wrong size", state_path));
    if (!options.quiet)
      print_stderr("resuming from step {} of {} (configuration, seed and batch size from the checkpoint)\n",
                 start_step, state_path);
  } else {
    // Seed the codebook from encoder outputs so that every code starts where data lives.
    torch::NoGradGuard no_grad;
    torch::Tensor latents = flat_latents(tokenizer->encoder(batch_images(0)));
    torch::Tensor all_rows = torch::arange(codebook_size, torch::kLong);
    reseed_codes(tokenizer->quantizer->codebook, all_rows, latents, mix_seed(options.seed, 0xC0DEB00C));
  }

  ensure_directory(fs::path(state_path).parent_path().string());
  if (!options.resume) discard_earlier_checkpoint(state_path);
  MetricsLog metrics(options.resolved_metrics_path(), options.resume ? start_step : -1);

  int64_t last_checkpoint = options.resume ? start_step : -1;
  auto save_checkpoint = [&](int64_t steps_done) {
    // Never write a model that is not finite (the loss is checked every step; this also
    // covers weights and optimizer moments that overflowed in the last update).
    std::vector<torch::Tensor> tensors = module_tensors(*tokenizer);
    for (const torch::Tensor& moment : adam.moments()) tensors.push_back(moment);
    if (!all_finite(tensors))
      throw_diverged("tokenizer", steps_done, "the weights are not finite after the update", last_checkpoint,
                     state_path, options.learning_rate);
    SafetensorsFile state;
    append_module_state(state, *tokenizer, "model.");
    adam.save_state(state);
    state.tensors.push_back(tensor_to_entry("trainer.code_usage", code_usage));
    state.metadata["step"] = std::to_string(steps_done);
    state.metadata["seed"] = std::to_string(options.seed);
    state.metadata["batch_size"] = std::to_string(options.batch_size);
    state.metadata["tokenizer_config"] = dump_json(options.config.to_json());
    state.metadata["data"] = options.data.path;
    state.metadata["limit"] = std::to_string(options.data.limit);
    write_safetensors(state_path, state);
    write_model_config(model);
    save_tokenizer_weights(model, tokenizer);
    last_checkpoint = steps_done;
  };

  TokenizerTrainResult result;
  result.steps_done = start_step;
  if (!options.quiet)
    print_stderr("tokenizer: {} parameters, codebook {}×{}, {} tokens per image, {} training images\n",
               count_parameters(*tokenizer), codebook_size, options.config.embedding_dim,
               tokenizer->grid_size(model.image_height) * tokenizer->grid_size(model.image_width), dataset_size);

  const auto started = std::chrono::steady_clock::now();
  ProgressWindow window;  // mean loss, and mean reconstruction MSE as its metric
  bool first_window = true;
  for (int64_t step = start_step; step < options.steps; ++step) {
    adapt_cpu_threads();
    if (interrupt_requested()) {
      save_checkpoint(step);
      result.interrupted = true;
      if (!options.quiet) print_stderr("interrupted: checkpoint saved at step {} ({})\n", step, state_path);
      break;
    }
    torch::Tensor images = batch_images(step);
    Reconstruction out = tokenizer->forward(images);
    torch::Tensor reconstruction_loss = (out.images - images).pow(2).mean();
    torch::Tensor loss = reconstruction_loss + options.codebook_weight * out.quantized.codebook_loss +
                         options.commitment_weight * out.quantized.commitment_loss;
    adam.zero_grad();
    loss.backward();
    const double learning_rate = warmup_cosine_lr(step, options.steps, options.warmup_steps,
                                                  options.learning_rate, options.final_lr_fraction);
    adam.step(learning_rate);

    // The values are read here, after the update was queued, as before; a step whose loss
    // is not finite is never saved (its update is garbage, and the run stops).
    const double loss_value = loss.item<double>();
    if (!std::isfinite(loss_value))
      throw_diverged("tokenizer", step + 1, describe_non_finite_loss(loss_value), last_checkpoint, state_path,
                     options.learning_rate);
    code_usage += torch::bincount(out.quantized.ids.flatten().to(torch::kCPU), {}, codebook_size);
    window.add(loss_value, reconstruction_loss.item<double>(), options.batch_size);
    const int64_t steps_done = step + 1;
    result.steps_done = steps_done;

    if (steps_done % options.log_every == 0 || steps_done == options.steps) {
      const ProgressWindow::Summary summary = window.take(options.steps - steps_done);
      const double mean_loss = summary.mean_loss;
      const double psnr = psnr_from_mse(summary.mean_metric);
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      // Codes hit since the last restart window began.
      const int64_t codes_in_use = (code_usage > 0).sum().item<int64_t>();
      if (first_window) result.first_loss = mean_loss;
      first_window = false;
      result.last_loss = mean_loss;
      result.last_psnr = psnr;
      if (!options.quiet)
        print_stderr(
                   "tokenizer step {}/{} | loss {:.5f} | psnr {:.2f} dB | codes {}/{} | lr {:.2e} | {:.0f} img/s | eta {}\n",
                   steps_done, options.steps, mean_loss, psnr, codes_in_use, codebook_size, learning_rate,
                   summary.items_per_second, format_duration(summary.eta_seconds));
      Json record = Json::object();
      record["step"] = steps_done;
      record["loss"] = mean_loss;
      record["reconstruction_mse"] = summary.mean_metric;
      record["psnr_db"] = psnr;
      record["codes_in_use"] = codes_in_use;
      record["learning_rate"] = learning_rate;
      record["images_per_second"] = summary.items_per_second;
      record["elapsed_seconds"] = elapsed;
      metrics.write(record);
    }
    if (options.dead_code_window > 0 && steps_done % options.dead_code_window == 0) {
      torch::Tensor dead = (code_usage == 0).nonzero().flatten();
      result.codes_used = codebook_size - dead.numel();
      reseed_codes(tokenizer->quantizer->codebook, dead, flat_latents(out.latents),
                   mix_seed(options.seed, static_cast<uint64_t>(steps_done)));
      code_usage.zero_();
    }

    const bool stopping = options.stop_after >= 0 && steps_done - start_step >= options.stop_after;
    if (steps_done % options.checkpoint_every == 0 || steps_done == options.steps || stopping)
      save_checkpoint(steps_done);
    if (stopping) break;
  }
  if (start_step >= options.steps && !options.quiet)
    print_stderr("nothing to do: the checkpoint is already at step {} (raise --steps to continue)\n", start_step);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

}  // namespace maskgit
