#include "eval/frechet.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

namespace maskgit {

namespace {

torch::Tensor symmetrised(const torch::Tensor& matrix) { return 0.5 * (matrix + matrix.transpose(0, 1)); }

void check_stats(const FeatureStats& stats, const char* which) {
  if (!stats.mean.defined() || !stats.covariance.defined() || stats.mean.dim() != 1 || stats.covariance.dim() != 2 ||
      stats.covariance.size(0) != stats.mean.size(0) || stats.covariance.size(1) != stats.mean.size(0))
    throw std::invalid_argument(fmt::format("frechet_distance: {} statistics are not a [D] mean with a [D, D] covariance", which));
}

}  // namespace

FeatureStats feature_stats(const torch::Tensor& features) {
  if (features.dim() != 2 || features.size(0) < 2)
    throw std::invalid_argument("feature_stats: expected features [N, D] with N >= 2");
  const torch::Tensor x = features.detach().to(torch::kCPU, torch::kFloat64);
  FeatureStats stats;
  stats.count = x.size(0);
  stats.mean = x.mean(0);
  const torch::Tensor centred = x - stats.mean;
  stats.covariance = symmetrised(centred.transpose(0, 1).matmul(centred) / static_cast<double>(stats.count - 1));
  return stats;
}

torch::Tensor symmetric_sqrt(const torch::Tensor& matrix) {
  const auto [eigenvalues, eigenvectors] = at::linalg_eigh(symmetrised(matrix.to(torch::kFloat64)), "L");
  const torch::Tensor roots = eigenvalues.clamp_min(0.0).sqrt();
  return symmetrised((eigenvectors * roots.unsqueeze(0)).matmul(eigenvectors.transpose(0, 1)));
}

double frechet_distance(const FeatureStats& a, const FeatureStats& b) {
  check_stats(a, "first");
  check_stats(b, "second");
  if (a.mean.size(0) != b.mean.size(0))
    throw std::invalid_argument(fmt::format("frechet_distance: feature sizes differ ({} and {})", a.mean.size(0), b.mean.size(0)));
  const torch::Tensor mean_a = a.mean.to(torch::kCPU, torch::kFloat64), mean_b = b.mean.to(torch::kCPU, torch::kFloat64);
  const torch::Tensor cov_a = a.covariance.to(torch::kCPU, torch::kFloat64);
  const torch::Tensor cov_b = b.covariance.to(torch::kCPU, torch::kFloat64);

  const double mean_term = (mean_a - mean_b).pow(2).sum().item<double>();
  const torch::Tensor root_a = symmetric_sqrt(cov_a);
  // Σa^½ Σb Σa^½ is symmetric PSD and has the same eigenvalues as Σa Σb.
  const torch::Tensor product = symmetrised(root_a.matmul(cov_b).matmul(root_a));
  const double trace_of_root = at::linalg_eigvalsh(product, "L").clamp_min(0.0).sqrt().sum().item<double>();
  const double distance = mean_term + cov_a.trace().item<double>() + cov_b.trace().item<double>() - 2.0 * trace_of_root;
  return std::max(0.0, distance);
}

}  // namespace maskgit
