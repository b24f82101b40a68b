#pragma once
// A perceptual-style feature loss for tokenizer training (docs/training.md §4), in the manner of
// LPIPS without its learned per-channel weights: images and reconstructions go through a frozen
// network the project trains for this purpose (a classifier directory, lib/eval/classifier.h,
// trained apart from the evaluation classifier: training against the judge's own features
// would only teach the tokenizer to please the judge), each layer's activations are
// unit-normalised over channels, and the loss is the sum over layers of the mean over images
// and positions of the squared difference, summed over channels.
#include <torch/torch.h>

#include <string>

#include "eval/classifier.h"

namespace maskgit {

class PerceptualLoss {
 public:
  // Reads the network from `directory` (Error(bad_input) naming the file on any problem), frozen
  // and in eval mode on `device`. `channels` is the tokenizer's: the network must take as many.
  PerceptualLoss(const std::string& directory, int64_t channels, const torch::Device& device);

  // Error(bad_input) naming the directory unless the network takes images of this size (the
  // dataset's, before the tokenizer pads them).
  void check_image_size(int64_t height, int64_t width) const;

  // Images and reconstructions [N, C, H, W] in [0, 1] (reconstructions are clamped) → a scalar
  // with the graph through `reconstructions` only. H, W: the network's input size, or larger by
  // the tokenizer's padding (cropped off the bottom and right).
  torch::Tensor operator()(const torch::Tensor& reconstructions, const torch::Tensor& images);

  // The weights' SHA-256 (recorded in checkpoints: a resumed run refuses another network).
  const std::string& weights_sha256() const { return sha256_; }
  const std::string& directory() const { return network_.directory; }

 private:
  LoadedClassifier network_;
  std::string sha256_;
};

}  // namespace maskgit
