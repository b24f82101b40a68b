#pragma once
// Reconstruction quality of a tokenizer on a set of images: what the README reports.
#include <torch/torch.h>

#include "eval/classifier.h"
#include "tokenizer/vqgan.h"

namespace maskgit {

struct ReconstructionStats {
  int64_t images = 0;
  double mean_psnr_db = 0;   // mean over images of 10·log10(1 / MSE), pixels clamped to [0,1]
  double mean_mse = 0;
  int64_t codes_used = 0;    // distinct ids over all images
  // Codebook perplexity: exp of the entropy (nats) of the ids' frequencies over all tokens;
  // codebook_size when every entry is used equally often, 1 when one entry takes every token,
  // 0 when there are no tokens (no images).
  double codebook_perplexity = 0;
  int64_t codebook_size = 0;
  int64_t tokens_per_image = 0;
  double seconds = 0;
  // With a judge (the evaluation classifier): how much class evidence the tokenizer keeps.
  bool judged = false;
  double accuracy_originals = 0;        // the classifier's accuracy on the originals (labels)
  double accuracy_reconstructions = 0;  // ... on their reconstructions
  double prediction_agreement = 0;      // fraction whose predicted class is the same on both
  // Fréchet distance of classifier features, reconstructions vs originals (a "reconstruction
  // FID" in the judge's feature space; 0 = indistinguishable).
  double frechet_distance = 0;
};

// The evaluation classifier and the images' labels ([N] int64), for evaluate_reconstruction.
struct ReconstructionJudge {
  Classifier* classifier = nullptr;
  torch::Tensor labels;
};

// Per-image PSNR of `reconstruction` against `original` ([N, C, H, W], both in [0,1]).
torch::Tensor per_image_psnr(const torch::Tensor& reconstruction, const torch::Tensor& original);

// Encodes and decodes `images` ([N, C, H, W] in [0, 1]) in batches on `device`; with a judge
// (its classifier must take the images' size and channels, N ≥ 2) also classifies both.
ReconstructionStats evaluate_reconstruction(VQTokenizer& tokenizer, const torch::Tensor& images,
                                            int64_t batch_size, const torch::Device& device,
                                            const ReconstructionJudge& judge = {});

}  // namespace maskgit
