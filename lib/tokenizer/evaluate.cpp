#include "tokenizer/evaluate.h"

#include "eval/frechet.h"
#include "runtime/threads.h"

#include <chrono>
#include <cmath>

namespace maskgit {

torch::Tensor per_image_psnr(const torch::Tensor& reconstruction, const torch::Tensor& original) {
  torch::Tensor mse = (reconstruction.clamp(0, 1) - original).pow(2).flatten(1).mean(1);
  return 10.0 * torch::log10(1.0 / mse.clamp_min(1e-12));
}

ReconstructionStats evaluate_reconstruction(VQTokenizer& tokenizer, const torch::Tensor& images,
                                            int64_t batch_size, const torch::Device& device,
                                            const ReconstructionJudge& judge) {
  const auto started = std::chrono::steady_clock::now();
  ReconstructionStats stats;
  stats.images = images.size(0);
  stats.codebook_size = tokenizer->config().codebook_size;
  stats.tokens_per_image = tokenizer->grid_size(images.size(2)) * tokenizer->grid_size(images.size(3));
  torch::Tensor usage = torch::zeros({stats.codebook_size}, torch::kLong);
  double psnr_sum = 0, mse_sum = 0;
  std::vector<torch::Tensor> original_features, reconstruction_features, original_predictions,
      reconstruction_predictions;
  if (judge.classifier) {
    (*judge.classifier)->eval();
    TORCH_CHECK(judge.labels.dim() == 1 && judge.labels.size(0) == stats.images,
                "evaluate_reconstruction: one label per image is needed");
  }
  for (int64_t begin = 0; begin < stats.images; begin += batch_size) {
    adapt_cpu_threads();
    const int64_t end = std::min(stats.images, begin + batch_size);
    torch::Tensor batch = images.slice(0, begin, end).to(device);
    torch::Tensor ids = tokenizer->encode(batch);
    torch::Tensor reconstruction = tokenizer->decode(ids, batch.size(2), batch.size(3)).clamp(0, 1);
    psnr_sum += per_image_psnr(reconstruction, batch).sum().item<double>();
    mse_sum += (reconstruction - batch).pow(2).flatten(1).mean(1).sum().item<double>();
    usage += torch::bincount(ids.flatten().to(torch::kCPU), {}, stats.codebook_size);
    if (judge.classifier) {
      torch::NoGradGuard no_grad;
      Classifier& classifier = *judge.classifier;
      const torch::Tensor a = classifier->features(batch), b = classifier->features(reconstruction);
      original_features.push_back(a.to(torch::kCPU, torch::kFloat32));
      reconstruction_features.push_back(b.to(torch::kCPU, torch::kFloat32));
      original_predictions.push_back(classifier->logits_from_features(a).argmax(1).to(torch::kCPU));
      reconstruction_predictions.push_back(classifier->logits_from_features(b).argmax(1).to(torch::kCPU));
    }
  }
  if (judge.classifier && stats.images >= 2) {
    const torch::Tensor labels = judge.labels.to(torch::kCPU, torch::kLong);
    const torch::Tensor a = torch::cat(original_predictions), b = torch::cat(reconstruction_predictions);
    stats.judged = true;
    stats.accuracy_originals = a.eq(labels).to(torch::kFloat64).mean().item<double>();
    stats.accuracy_reconstructions = b.eq(labels).to(torch::kFloat64).mean().item<double>();
    stats.prediction_agreement = a.eq(b).to(torch::kFloat64).mean().item<double>();
    stats.frechet_distance = frechet_distance(feature_stats(torch::cat(reconstruction_features)),
                                              feature_stats(torch::cat(original_features)));
  }
  if (stats.images > 0) {
    stats.mean_psnr_db = psnr_sum / stats.images;
    stats.mean_mse = mse_sum / stats.images;
  }
  stats.codes_used = (usage > 0).sum().item<int64_t>();
  const double tokens = usage.sum().item<double>();
  if (tokens > 0) {
    const torch::Tensor p = usage.to(torch::kFloat64) / tokens;
    stats.codebook_perplexity = std::exp(-(p * p.clamp_min(1e-300).log()).sum().item<double>());
  }
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return stats;
}

}  // namespace maskgit
