#pragma once
// Reconstruction quality of a tokenizer on a set of images: what the README reports.
#include <torch/torch.h>

#include "tokenizer/vqgan.h"

namespace maskgit {

struct ReconstructionStats {
  int64_t images = 0;
  double mean_psnr_db = 0;   // mean over images of 10·log10(1 / MSE), pixels clamped to [0,1]
  double mean_mse = 0;
  int64_t codes_used = 0;    // distinct ids over all images
  int64_t codebook_size = 0;
  int64_t tokens_per_image = 0;
  double seconds = 0;
};

// Per-image PSNR of `reconstruction` against `original` ([N, C, H, W], both in [0,1]).
torch::Tensor per_image_psnr(const torch::Tensor& reconstruction, const torch::Tensor& original);

ReconstructionStats evaluate_reconstruction(VQTokenizer& tokenizer, const torch::Tensor& images,
                                            int64_t batch_size, const torch::Device& device);

}  // namespace maskgit
