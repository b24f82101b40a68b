#include "eval/classifier.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "common/error.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "io/tensor_io.h"
#include "runtime/threads.h"

namespace maskgit {
namespace fs = std::filesystem;

namespace {

constexpr int64_t kBaseWidth = 32;
constexpr int64_t kMaxImageSide = 4096;

int64_t scaled_width(int64_t base, double multiplier) {
  return std::max<int64_t>(1, std::llround(static_cast<double>(base) * multiplier));
}

torch::nn::Conv2d conv3x3(int64_t in_channels, int64_t out_channels) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, out_channels, 3).padding(1));
}

std::string path_in(const std::string& directory, const char* file) {
  return (fs::path(directory) / file).string();
}

std::string shape_text(const torch::Tensor& tensor) {
  std::string text = "[";
  for (int64_t d = 0; d < tensor.dim(); ++d) text += (d ? ", " : "") + std::to_string(tensor.size(d));
  return text + "]";
}

}  // namespace

int64_t ClassifierConfig::first_block_width() const { return scaled_width(kBaseWidth, width_multiplier); }
int64_t ClassifierConfig::second_block_width() const { return scaled_width(2 * kBaseWidth, width_multiplier); }

void ClassifierConfig::validate(const std::string& path) const {
  auto require = [&](bool ok, const char* field, const std::string& why) {
    if (!ok) throw std::runtime_error(fmt::format("{}.{}: {}", path, field, why));
  };
  require(channels == 1 || channels == 3, "channels", fmt::format("must be 1 or 3, got {}", channels));
  // Two 2× poolings need at least 4 pixels a side to leave one.
  require(height >= 4 && height <= kMaxImageSide, "height", fmt::format("must be in 4..{}, got {}", kMaxImageSide, height));
  require(width >= 4 && width <= kMaxImageSide, "width", fmt::format("must be in 4..{}, got {}", kMaxImageSide, width));
  require(num_classes >= 2 && num_classes <= 100000, "num_classes", fmt::format("must be in 2..100000, got {}", num_classes));
  require(std::isfinite(width_multiplier) && width_multiplier > 0 && width_multiplier <= 64, "width_multiplier",
          "must be in (0, 64]");
  require(feature_dim >= 1 && feature_dim <= 65536, "feature_dim", fmt::format("must be in 1..65536, got {}", feature_dim));
  require(std::isfinite(dropout) && dropout >= 0 && dropout < 1, "dropout", "must be in [0, 1)");
  require(parameter_count() <= kMaxParameters, "feature_dim",
          fmt::format("the configuration describes {} parameters, more than the {} allowed", parameter_count(),
                      kMaxParameters));
}

int64_t ClassifierConfig::parameter_count() const {
  // Mirrors ClassifierImpl's constructor; test_eval checks the two agree.
  auto conv = [](int64_t in, int64_t out) { return in * out * 9 + out; };
  auto linear = [](int64_t in, int64_t out) { return in * out + out; };
  const int64_t first = first_block_width(), second = second_block_width();
  return conv(channels, first) + conv(first, first) + conv(first, second) + conv(second, second) +
         linear(second * (height / 4) * (width / 4), feature_dim) + linear(feature_dim, num_classes);
}

void to_json(Json& json, const ClassifierConfig& config) {
  json = Json{{"channels", config.channels},
              {"height", config.height},
              {"width", config.width},
              {"num_classes", config.num_classes},
              {"width_multiplier", config.width_multiplier},
              {"feature_dim", config.feature_dim},
              {"dropout", config.dropout}};
}

void from_json(const Json& json, ClassifierConfig& config) { config = ClassifierConfig::from_json(json); }

Json ClassifierConfig::to_json() const { return *this; }

ClassifierConfig ClassifierConfig::from_json(const Json& json, const std::string& path) {
  if (!json.is_object()) throw std::runtime_error(path + ": expected an object");
  ClassifierConfig config;
  config.channels = json_int(json, "channels", path);
  config.height = json_int(json, "height", path);
  config.width = json_int(json, "width", path);
  config.num_classes = json_int(json, "num_classes", path);
  config.width_multiplier = json_double(json, "width_multiplier", path);
  config.feature_dim = json_int(json, "feature_dim", path);
  config.dropout = json_double(json, "dropout", path);
  config.validate(path);
  return config;
}

ClassifierImpl::ClassifierImpl(const ClassifierConfig& config) : config_(config) {
  config_.validate();
  const int64_t first = config_.first_block_width();
  const int64_t second = config_.second_block_width();
  conv1_ = register_module("conv1", conv3x3(config_.channels, first));
  conv2_ = register_module("conv2", conv3x3(first, first));
  conv3_ = register_module("conv3", conv3x3(first, second));
  conv4_ = register_module("conv4", conv3x3(second, second));
  const int64_t pooled = (config_.height / 4) * (config_.width / 4);
  hidden_ = register_module("hidden", torch::nn::Linear(second * pooled, config_.feature_dim));
  dropout_ = register_module("dropout", torch::nn::Dropout(config_.dropout));
  head_ = register_module("head", torch::nn::Linear(config_.feature_dim, config_.num_classes));
}

torch::Tensor ClassifierImpl::features(const torch::Tensor& images) { return activations(images).back().flatten(1); }

std::vector<torch::Tensor> ClassifierImpl::activations(const torch::Tensor& images) {
  // Centred inputs train faster; centring inside the model keeps every caller on [0, 1] pixels.
  std::vector<torch::Tensor> taps;
  torch::Tensor x = images - 0.5;
  taps.push_back(torch::relu(conv1_(x)));
  taps.push_back(torch::relu(conv2_(taps.back())));
  x = torch::max_pool2d(taps.back(), 2);
  taps.push_back(torch::relu(conv3_(x)));
  taps.push_back(torch::relu(conv4_(taps.back())));
  x = torch::max_pool2d(taps.back(), 2);
  taps.push_back(torch::relu(hidden_(x.flatten(1))).unsqueeze(-1).unsqueeze(-1));
  return taps;
}

torch::Tensor ClassifierImpl::logits_from_features(const torch::Tensor& features) {
  return head_(dropout_(features));
}

torch::Tensor ClassifierImpl::forward(const torch::Tensor& images) {
  return logits_from_features(features(images));
}

LoadedClassifier read_classifier(const std::string& directory, const torch::Device& device) {
  std::error_code error;
  if (!fs::is_directory(directory, error))
    throw_bad_input(fmt::format("{}: classifier directory not found", directory));
  const std::string config_path = path_in(directory, kClassifierConfigFile);
  if (!fs::exists(config_path, error))
    throw_bad_input(fmt::format("{}: missing (not a classifier directory?)", config_path));
  Json root;
  try {
    root = parse_json(read_file_bytes(config_path));
  } catch (const JsonParseError& e) {
    throw_bad_input(fmt::format("{}: invalid JSON: {}", config_path, e.what()));
  }

  LoadedClassifier loaded;
  loaded.directory = directory;
  ClassifierConfig config;
  try {
    if (!root.is_object()) throw std::runtime_error("top level: expected an object");
    const std::string format = json_string(root, "format", "");
    if (format != kClassifierFormat)
      throw std::runtime_error(fmt::format("format: expected \"{}\", got \"{}\"", kClassifierFormat, format));
    const int64_t version = json_int(root, "format_version", "");
    if (version != kClassifierFormatVersion)
      throw std::runtime_error(fmt::format("format_version: {} is not supported (this build reads {})", version,
                                           kClassifierFormatVersion));
    const Json* image = json_find(root, "image");
    if (!image || !image->is_object()) throw std::runtime_error("image: expected an object");
    const int64_t image_width = json_int(*image, "width", "image");
    const int64_t image_height = json_int(*image, "height", "image");
    const int64_t image_channels = json_int(*image, "channels", "image");
    const Json* names = json_find(root, "class_names");
    if (!names || !names->is_array() || names->size() == 0)
      throw std::runtime_error("class_names: expected a non-empty list of strings");
    for (const Json& name : *names) {
      if (!name.is_string() || name.get_ref<const std::string&>().empty())
        throw std::runtime_error("class_names: every entry must be a non-empty string");
      loaded.class_names.push_back(name.get<std::string>());
    }
    const Json* section = json_find(root, "classifier");
    if (!section) throw std::runtime_error("classifier: missing");
    config = ClassifierConfig::from_json(*section, "classifier");
    // The image section is what users read; the classifier section is what builds the
    // network. Disagreement means a hand-edited file, and either reading could be wrong.
    if (image_width != config.width) throw std::runtime_error("image.width: differs from classifier.width");
    if (image_height != config.height) throw std::runtime_error("image.height: differs from classifier.height");
    if (image_channels != config.channels) throw std::runtime_error("image.channels: differs from classifier.channels");
    if (loaded.num_classes() != config.num_classes)
      throw std::runtime_error(fmt::format("class_names: {} names for classifier.num_classes {}", loaded.num_classes(),
                                           config.num_classes));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw_bad_input(fmt::format("{}: {}", config_path, e.what()));
  }

  const std::string weights_path = path_in(directory, kClassifierWeightsFile);
  check_weights_file_size(weights_path, config.parameter_count());
  SafetensorsFile weights;
  try {
    weights = read_safetensors(weights_path);
  } catch (const SafetensorsError& e) {
    throw_bad_input(e.what());
  }
  loaded.model = Classifier(config);
  load_module_state(*loaded.model, weights, weights_path);
  loaded.model->to(device);
  loaded.model->eval();
  return loaded;
}

void save_classifier(const std::string& directory, Classifier& classifier, const std::vector<std::string>& class_names) {
  const ClassifierConfig& config = classifier->config();
  if (static_cast<int64_t>(class_names.size()) != config.num_classes)
    throw std::invalid_argument(fmt::format("save_classifier: {} class names for {} classes", class_names.size(),
                                            config.num_classes));
  Json root = Json::object();
  root["format"] = kClassifierFormat;
  root["format_version"] = kClassifierFormatVersion;
  Json image = Json::object();
  image["width"] = config.width;
  image["height"] = config.height;
  image["channels"] = config.channels;
  root["image"] = image;
  Json names = Json::array();
  for (const auto& name : class_names) names.push_back(name);
  root["class_names"] = names;
  root["classifier"] = config.to_json();

  SafetensorsFile weights;
  append_module_state(weights, *classifier);
  weights.metadata["format"] = "pt";
  weights.metadata["stage"] = "classifier";
  ensure_directory(directory);
  // Weights first: a config.json naming a new architecture must never sit beside old weights.
  write_safetensors(path_in(directory, kClassifierWeightsFile), weights);
  write_file_atomic(path_in(directory, kClassifierConfigFile), dump_json(root, 2) + "\n");
}

ClassifierOutputs classify_in_batches(Classifier& classifier, const torch::Tensor& images, int64_t batch_size,
                                      const torch::Device& device) {
  if (batch_size < 1) throw std::invalid_argument("classify_in_batches: batch_size must be positive");
  const ClassifierConfig& config = classifier->config();
  if (images.dim() != 4 || images.size(1) != config.channels || images.size(2) != config.height ||
      images.size(3) != config.width)
    throw_bad_input(fmt::format("images are {}, the classifier takes [N, {}, {}, {}]", shape_text(images),
                                config.channels, config.height, config.width));
  torch::NoGradGuard no_grad;
  const bool was_training = classifier->is_training();
  classifier->eval();
  std::vector<torch::Tensor> features, logits;
  for (int64_t begin = 0; begin < images.size(0); begin += batch_size) {
    adapt_cpu_threads();
    const int64_t end = std::min(images.size(0), begin + batch_size);
    torch::Tensor batch_features = classifier->features(images.slice(0, begin, end).to(device, torch::kFloat32));
    logits.push_back(classifier->logits_from_features(batch_features).to(torch::kCPU));
    features.push_back(batch_features.to(torch::kCPU));
  }
  classifier->train(was_training);
  ClassifierOutputs out;
  if (features.empty()) {
    out.features = torch::empty({0, config.feature_dim});
    out.logits = torch::empty({0, config.num_classes});
  } else {
    out.features = torch::cat(features);
    out.logits = torch::cat(logits);
  }
  return out;
}

std::string default_classifier_dir() {
  if (const char* from_env = std::getenv("MASKGIT_CLASSIFIER"); from_env && *from_env) return from_env;
  fs::path default_model = fs::path(MASKGIT_DEFAULT_MODEL_DIR).lexically_normal();
  if (!default_model.has_filename()) default_model = default_model.parent_path();  // a trailing '/'
  const fs::path beside_default_model = default_model.parent_path() / "fashion-mnist-classifier";
  std::error_code error;
  if (fs::is_directory(beside_default_model, error)) return beside_default_model.string();
  // An installed binary: <prefix>/bin/tool → <prefix>/share/maskgit-cpp/models/....
  const fs::path executable = fs::read_symlink("/proc/self/exe", error);
  if (!error) {
    const fs::path installed =
        executable.parent_path().parent_path() / "share/maskgit-cpp/models/fashion-mnist-classifier";
    if (fs::is_directory(installed, error)) return installed.string();
  }
  return beside_default_model.string();
}

}  // namespace maskgit
