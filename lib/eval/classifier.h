#pragma once
// The evaluation classifier: a small CNN trained on real images, used to judge generated
// ones. Its predicted class says whether a sample shows what it was asked for, and its
// penultimate activations are the feature space of the Fréchet distance (our stand-in for
// the Inception network of FID, which is not available for 28×28 grey images).
//
// A classifier directory holds config.json ("format": "maskgit-cpp-classifier") and
// classifier.safetensors. It is separate from a model directory so that one classifier
// judges every model trained on the same data.
#include <torch/torch.h>

#include <string>
#include <vector>

#include "io/json.h"

namespace maskgit {

constexpr const char* kClassifierFormat = "maskgit-cpp-classifier";
constexpr int kClassifierFormatVersion = 1;
constexpr const char* kClassifierConfigFile = "config.json";
constexpr const char* kClassifierWeightsFile = "classifier.safetensors";

struct ClassifierConfig {
  int64_t channels = 1;
  int64_t height = 28;
  int64_t width = 28;
  int64_t num_classes = 10;
  // Scales the convolution widths (32 and 64 at 1.0); tests use tiny networks.
  double width_multiplier = 1.0;
  int64_t feature_dim = 128;  // the penultimate layer, i.e. the Fréchet feature space
  double dropout = 0.3;

  int64_t first_block_width() const;
  int64_t second_block_width() const;

  // Throws std::runtime_error naming the field (prefixed by `path`) when out of range.
  // Throws std::runtime_error naming the field; parameter_count() is at most kMaxParameters.
  void validate(const std::string& path = "classifier") const;
  static constexpr int64_t kMaxParameters = int64_t{1} << 30;
  // Number of scalars the classifier allocates (only meaningful within validate()'s bounds).
  int64_t parameter_count() const;
  Json to_json() const;  // Json(*this), see to_json() below
  static ClassifierConfig from_json(const Json& json, const std::string& path = "classifier");
};

// nlohmann's conversions, found by argument-dependent lookup: `Json json = config;` writes every
// field in a fixed order, and `json.get<ClassifierConfig>()` reads through the static from_json (every field
// checked, errors naming the dotted path).
void to_json(Json& json, const ClassifierConfig& config);
void from_json(const Json& json, ClassifierConfig& config);

// conv3x3+ReLU ×2, maxpool 2 → conv3x3+ReLU ×2, maxpool 2 → Linear+ReLU (features)
// → dropout → Linear (logits). Input pixels are in [0, 1], as everywhere in the project.
class ClassifierImpl : public torch::nn::Module {
 public:
  explicit ClassifierImpl(const ClassifierConfig& config);

  // [N, C, H, W] → [N, feature_dim], after the ReLU.
  torch::Tensor features(const torch::Tensor& images);
  // Every layer's activations after its ReLU, in order: conv1, conv2 [N, first, H, W], conv3,
  // conv4 [N, second, H/2, W/2], the features [N, feature_dim, 1, 1] (the perceptual loss's
  // taps, lib/tokenizer/perceptual.h).
  std::vector<torch::Tensor> activations(const torch::Tensor& images);
  // Features → logits [N, num_classes] (dropout applies in training mode).
  torch::Tensor logits_from_features(const torch::Tensor& features);
  torch::Tensor forward(const torch::Tensor& images);

  const ClassifierConfig& config() const { return config_; }

 private:
  ClassifierConfig config_;
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr}, conv3_{nullptr}, conv4_{nullptr};
  torch::nn::Linear hidden_{nullptr}, head_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
};
TORCH_MODULE(Classifier);

// A classifier as read from its directory, on a device and in eval mode.
struct LoadedClassifier {
  std::string directory;
  std::vector<std::string> class_names;  // index = class id; size == config.num_classes
  Classifier model{nullptr};

  const ClassifierConfig& config() const { return model->config(); }
  int64_t num_classes() const { return static_cast<int64_t>(class_names.size()); }
};

// Reads and validates DIR/config.json and DIR/classifier.safetensors. Throws Error(bad_input)
// naming the file and field (or tensor) on any problem.
LoadedClassifier read_classifier(const std::string& directory, const torch::Device& device);

// Writes DIR/config.json and DIR/classifier.safetensors (weights only), each atomically,
// creating DIR. `class_names` must have config.num_classes entries.
void save_classifier(const std::string& directory, Classifier& classifier,
                     const std::vector<std::string>& class_names);

// Features [N, feature_dim] and logits [N, num_classes] of `images` on the CPU (float32),
// computed in eval mode in batches of `batch_size` on `device`.
struct ClassifierOutputs {
  torch::Tensor features;
  torch::Tensor logits;
};
ClassifierOutputs classify_in_batches(Classifier& classifier, const torch::Tensor& images,
                                      int64_t batch_size, const torch::Device& device);

// The classifier used when none is named: $MASKGIT_CLASSIFIER if set, else the shipped
// models/fashion-mnist-classifier beside the default model directory (source tree, or
// <prefix>/share/maskgit-cpp/models next to the binary).
std::string default_classifier_dir();

}  // namespace maskgit
