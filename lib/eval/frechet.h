#pragma once
// The Fréchet distance between two sets of feature vectors, each summarised by a Gaussian
// (mean and covariance): the measure behind FID, here over any feature extractor's outputs.
#include <torch/torch.h>

namespace maskgit {

struct FeatureStats {
  torch::Tensor mean;        // [D] float64
  torch::Tensor covariance;  // [D, D] float64, unbiased (divides by count − 1), as FID does
  int64_t count = 0;
};

// Statistics of features [N, D] (N ≥ 2), computed in float64 on the CPU.
FeatureStats feature_stats(const torch::Tensor& features);

// |μa − μb|² + tr(Σa) + tr(Σb) − 2·tr((Σa^½ Σb Σa^½)^½), which equals the usual
// tr((Σa Σb)^½) form but needs only symmetric eigendecompositions: they are stable and
// real, where the general matrix square root of Σa Σb is neither. Eigenvalues that rounding
// makes slightly negative are clamped to 0, and so is the result.
double frechet_distance(const FeatureStats& a, const FeatureStats& b);

// The square root of a symmetric positive semi-definite matrix (negative eigenvalues
// clamped to 0).
torch::Tensor symmetric_sqrt(const torch::Tensor& matrix);

}  // namespace maskgit
