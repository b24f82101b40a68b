#include "eval/sample_quality.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <system_error>

#include "common/error.h"
#include "data/batcher.h"
#include "eval/frechet.h"
#include "io/image.h"

namespace maskgit {
namespace fs = std::filesystem;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string lowercase_extension(const fs::path& path) {
  std::string extension = path.extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return extension;
}

bool is_image_file(const fs::path& path) {
  const std::string extension = lowercase_extension(path);
  return extension == ".png" || extension == ".jpg" || extension == ".jpeg";
}

bool is_hidden(const fs::path& path) {
  const std::string name = path.filename().string();
  return !name.empty() && name.front() == '.';
}

// Lower-case letters and digits only: "T-shirt/top" and "t-shirt_top" both become "tshirttop".
std::string folded_name(const std::string& name) {
  std::string folded;
  for (const unsigned char c : name)
    if (std::isalnum(c)) folded += static_cast<char>(std::tolower(c));
  return folded;
}

bool parse_class_id(const std::string& text, int64_t& id) {
  if (text.empty() || text.size() > 18) return false;
  size_t start = text[0] == '-' ? 1 : 0;
  if (start == text.size()) return false;
  for (size_t i = start; i < text.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return false;
  id = std::stoll(text);
  return true;
}

std::string class_range_text(const std::vector<std::string>& class_names) {
  return fmt::format("0..{}", class_names.size() - 1);
}

std::string class_list_text(const std::vector<std::string>& class_names) {
  std::string text;
  for (size_t i = 0; i < class_names.size(); ++i) text += fmt::format("{}{} {}", i ? ", " : "", i, class_names[i]);
  return text;
}

// The class a sub-folder stands for: its exact class name, its class id, or its name
// ignoring case and punctuation, in that order.
int64_t class_of_folder(const fs::path& folder, const std::vector<std::string>& class_names) {
  const std::string name = folder.filename().string();
  for (size_t i = 0; i < class_names.size(); ++i)
    if (class_names[i] == name) return static_cast<int64_t>(i);
  int64_t id = 0;
  if (parse_class_id(name, id)) {
    if (id < 0 || id >= static_cast<int64_t>(class_names.size()))
      throw_bad_input(fmt::format("{}: class id {} is out of range (the classifier has classes {})", folder.string(), id,
                                  class_range_text(class_names)));
    return id;
  }
  int64_t match = -1;
  const std::string folded = folded_name(name);
  for (size_t i = 0; i < class_names.size() && !folded.empty(); ++i) {
    if (folded_name(class_names[i]) != folded) continue;
    if (match >= 0)
      throw_bad_input(fmt::format("{}: matches classes {} and {}; name the folder by class id", folder.string(), match, i));
    match = static_cast<int64_t>(i);
  }
  if (match < 0)
    throw_bad_input(fmt::format("{}: not a class of the classifier (name a folder by class id or name: {})",
                                folder.string(), class_list_text(class_names)));
  return match;
}

int64_t class_from_png_text(const std::string& file, const std::vector<std::string>& class_names) {
  if (lowercase_extension(file) != ".png")
    throw_bad_input(fmt::format("{}: no intended class (only PNG files carry a \"{}\" text chunk; put other images in "
                                "class sub-folders)",
                                file, kPngClassKey));
  const std::map<std::string, std::string> text = read_png_text(file);
  const auto found = text.find(kPngClassKey);
  if (found == text.end())
    throw_bad_input(fmt::format("{}: no intended class (no \"{}\" text chunk; put images in class sub-folders instead)",
                                file, kPngClassKey));
  int64_t id = 0;
  if (!parse_class_id(found->second, id))
    throw_bad_input(fmt::format("{}: \"{}\" is \"{}\", not a class id", file, kPngClassKey, found->second));
  if (id < 0 || id >= static_cast<int64_t>(class_names.size()))
    throw_bad_input(fmt::format("{}: class id {} is out of range (the classifier has classes {})", file, id,
                                class_range_text(class_names)));
  return id;
}

// Non-hidden entries of `directory`, sorted by name so that the order is the same everywhere.
std::vector<fs::path> sorted_entries(const fs::path& directory) {
  std::vector<fs::path> entries;
  std::error_code error;
  fs::directory_iterator it(directory, error);
  for (; !error && it != fs::directory_iterator(); it.increment(error))
    if (!is_hidden(it->path())) entries.push_back(it->path());
  if (error) throw_bad_input(fmt::format("{}: cannot list directory: {}", directory.string(), error.message()));
  std::sort(entries.begin(), entries.end());
  return entries;
}

bool is_existing_directory(const fs::path& path) {
  std::error_code error;
  return fs::is_directory(path, error);
}

void add_sample(LabeledSamples& samples, std::vector<torch::Tensor>& images, std::vector<int64_t>& labels,
                const fs::path& file, int64_t label, const ClassifierConfig& config) {
  images.push_back(read_image_as(file.string(), static_cast<int>(config.channels), static_cast<int>(config.width),
                                 static_cast<int>(config.height)));
  labels.push_back(label);
  samples.sources.push_back(file.string());
}

void finish_samples(LabeledSamples& samples, const std::vector<torch::Tensor>& images,
                    const std::vector<int64_t>& labels) {
  samples.images = torch::stack(images);
  samples.labels = torch::tensor(labels, torch::kLong);
}

// "PATH (split)" for an IDX directory, where the split is part of what was read; else PATH.
std::string dataset_name(const std::string& path, const std::string& split) {
  const fs::path directory(path);
  std::error_code error;
  const bool split_read = is_existing_directory(directory) && (fs::exists(directory / (split + "-images-idx3-ubyte"), error) ||
                                                      fs::exists(directory / (split + "-images-idx3-ubyte.gz"), error));
  return split_read ? fmt::format("{} ({})", path, split) : path;
}

}  // namespace

LabeledSamples read_labeled_samples(const std::string& directory, const std::vector<std::string>& class_names,
                                    const ClassifierConfig& config) {
  std::error_code error;
  if (!fs::exists(directory, error)) throw_bad_input(fmt::format("{}: no such directory", directory));
  if (!is_existing_directory(directory)) throw_bad_input(fmt::format("{}: not a directory", directory));
  const std::vector<fs::path> entries = sorted_entries(directory);
  std::vector<fs::path> folders, files;
  for (const auto& entry : entries) {
    if (is_existing_directory(entry)) folders.push_back(entry);
    else if (is_image_file(entry)) files.push_back(entry);
  }

  LabeledSamples samples;
  std::vector<torch::Tensor> images;
  std::vector<int64_t> labels;
  if (!folders.empty()) {
    // Mixing the two layouts would leave it unclear which rule gives a loose file its class.
    if (!files.empty())
      throw_bad_input(fmt::format("{}: an image beside class sub-folders; put it in its class folder", files.front().string()));
    for (const auto& folder : folders) {
      const int64_t label = class_of_folder(folder, class_names);
      for (const auto& file : sorted_entries(folder))
        if (!is_existing_directory(file) && is_image_file(file)) add_sample(samples, images, labels, file, label, config);
    }
  } else {
    for (const auto& file : files) add_sample(samples, images, labels, file, class_from_png_text(file.string(), class_names), config);
  }
  if (images.empty())
    throw_bad_input(fmt::format("{}: no .png, .jpg or .jpeg images (expected PNGs with a \"{}\" text chunk, or class "
                                "sub-folders)",
                                directory, kPngClassKey));
  finish_samples(samples, images, labels);
  return samples;
}

LabeledSamples read_labeled_sample_files(const std::vector<std::string>& files,
                                         const std::vector<std::string>& class_names, const ClassifierConfig& config) {
  if (files.empty()) throw InvalidArgument("files", "no images to evaluate");
  LabeledSamples samples;
  std::vector<torch::Tensor> images;
  std::vector<int64_t> labels;
  for (const auto& file : files) {
    std::error_code error;
    if (!fs::exists(file, error)) throw_bad_input(fmt::format("{}: no such file", file));
    add_sample(samples, images, labels, file, class_from_png_text(file, class_names), config);
  }
  finish_samples(samples, images, labels);
  return samples;
}

ReferenceSets load_reference_sets(const ReferenceOptions& options, const ClassifierConfig& config, int64_t sample_count) {
  auto spec_for = [&](const std::string& path, const std::string& split) {
    DatasetSpec spec;
    spec.path = path;
    spec.split = split;
    spec.channels = static_cast<int>(config.channels);
    spec.width = static_cast<int>(config.width);
    spec.height = static_cast<int>(config.height);
    return spec;
  };
  if (options.floor_count < 0) throw InvalidArgument("floor_count", fmt::format("{} is negative", options.floor_count));
  ReferenceSets sets;
  sets.reference = load_dataset(spec_for(options.path, options.split));
  sets.reference_name = dataset_name(options.path, options.split);

  const std::string floor_path = options.floor_path.empty() ? options.path : options.floor_path;
  const LabeledImages floor_data = load_dataset(spec_for(floor_path, options.floor_split));
  sets.floor_name = dataset_name(floor_path, options.floor_split);
  const int64_t available = floor_data.images.size(0);
  int64_t count = options.floor_count;
  if (count == 0) {
    count = std::min({sample_count, kMaxFloorCount, available});
  } else if (count > available) {
    throw InvalidArgument("floor_count",
                          fmt::format("{} is more than the {} images of {}", count, available, sets.floor_name));
  }
  // Our own shuffle (Batcher) rather than torch::randperm, so that the subset is the same on
  // every LibTorch version.
  std::vector<int64_t> order = Batcher(available, 1, options.seed, false).epoch_order(0);
  order.resize(static_cast<size_t>(count));
  sets.floor = floor_data.images.index_select(0, torch::tensor(order, torch::kLong));
  return sets;
}

double ClassAccuracy::accuracy() const {
  return total_images > 0 ? static_cast<double>(total_correct) / static_cast<double>(total_images) : kNaN;
}

double ClassAccuracy::class_accuracy(size_t class_id) const {
  if (class_id >= images.size() || images[class_id] == 0) return kNaN;
  return static_cast<double>(correct[class_id]) / static_cast<double>(images[class_id]);
}

ClassAccuracy tally_predictions(const torch::Tensor& predicted, const torch::Tensor& labels, int64_t num_classes) {
  if (predicted.dim() != 1 || labels.dim() != 1 || predicted.size(0) != labels.size(0))
    throw std::invalid_argument("tally_predictions: need one prediction per label");
  ClassAccuracy tally;
  tally.images.assign(static_cast<size_t>(num_classes), 0);
  tally.correct.assign(static_cast<size_t>(num_classes), 0);
  tally.predicted.assign(static_cast<size_t>(num_classes), 0);
  const torch::Tensor predicted_cpu = predicted.to(torch::kCPU, torch::kLong).contiguous();
  const torch::Tensor labels_cpu = labels.to(torch::kCPU, torch::kLong).contiguous();
  const auto guesses = predicted_cpu.accessor<int64_t, 1>();
  const auto truths = labels_cpu.accessor<int64_t, 1>();
  for (int64_t i = 0; i < labels_cpu.size(0); ++i) {
    const int64_t truth = truths[i], guess = guesses[i];
    if (truth < 0 || truth >= num_classes || guess < 0 || guess >= num_classes)
      throw std::invalid_argument("tally_predictions: class id out of range");
    ++tally.images[static_cast<size_t>(truth)];
    ++tally.predicted[static_cast<size_t>(guess)];
    if (truth == guess) {
      ++tally.correct[static_cast<size_t>(truth)];
      ++tally.total_correct;
    }
    ++tally.total_images;
  }
  return tally;
}

Json SampleQuality::to_json() const {
  Json root = Json::object();
  root["images"] = images();
  root["accuracy"] = accuracy();
  root["frechet_distance"] = frechet_distance;
  root["floor_distance"] = floor_distance;
  Json reference = Json::object();
  reference["data"] = reference_name;
  reference["images"] = reference_images;
  reference["classifier_accuracy"] = reference_accuracy;
  root["reference"] = reference;
  Json floor = Json::object();
  floor["data"] = floor_name;
  floor["images"] = floor_images;
  root["floor"] = floor;
  Json per_class = Json::array();
  for (size_t i = 0; i < class_names.size(); ++i) {
    Json entry = Json::object();
    entry["id"] = static_cast<int64_t>(i);
    entry["name"] = class_names[i];
    entry["images"] = classes.images[i];
    entry["accuracy"] = classes.class_accuracy(i);
    entry["predicted"] = classes.predicted[i];
    per_class.push_back(entry);
  }
  root["classes"] = per_class;
  root["seconds"] = seconds;
  return root;
}

SampleQuality evaluate_sample_quality(LoadedClassifier& classifier, const torch::Tensor& images,
                                      const torch::Tensor& labels, const ReferenceSets& references,
                                      int64_t batch_size, const torch::Device& device) {
  const auto started = std::chrono::steady_clock::now();
  const int64_t num_classes = classifier.num_classes();
  if (labels.dim() != 1 || labels.size(0) != images.size(0))
    throw std::invalid_argument("evaluate_sample_quality: need one intended class per image");
  if (labels.numel() > 0) {
    const int64_t lowest = labels.min().item<int64_t>(), highest = labels.max().item<int64_t>();
    if (lowest < 0 || highest >= num_classes)
      throw_bad_input(fmt::format("intended classes span {}..{}, the classifier has classes 0..{}", lowest, highest,
                                  num_classes - 1));
  }
  SampleQuality quality;
  quality.class_names = classifier.class_names;
  quality.reference_name = references.reference_name;
  quality.floor_name = references.floor_name;
  quality.reference_images = references.reference.images.size(0);
  quality.floor_images = references.floor.size(0);

  const ClassifierOutputs samples = classify_in_batches(classifier.model, images, batch_size, device);
  quality.classes = tally_predictions(samples.logits.argmax(1), labels, num_classes);

  const ClassifierOutputs reference = classify_in_batches(classifier.model, references.reference.images, batch_size, device);
  quality.reference_accuracy =
      references.reference.class_names == classifier.class_names && quality.reference_images > 0
          ? tally_predictions(reference.logits.argmax(1), references.reference.labels, num_classes).accuracy()
          : kNaN;
  const ClassifierOutputs floor = classify_in_batches(classifier.model, references.floor, batch_size, device);

  if (quality.reference_images < 2)
    throw_bad_input(fmt::format("{}: the reference set needs at least 2 images", references.reference_name));
  const FeatureStats reference_stats = feature_stats(reference.features);
  quality.frechet_distance = images.size(0) >= 2 ? frechet_distance(feature_stats(samples.features), reference_stats) : kNaN;
  quality.floor_distance = quality.floor_images >= 2 ? frechet_distance(feature_stats(floor.features), reference_stats) : kNaN;
  quality.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return quality;
}

}  // namespace maskgit
