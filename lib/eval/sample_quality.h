#pragma once
// How good are generated images, judged by the evaluation classifier:
//  - accuracy: does each image show the class it was generated for?
//  - Fréchet distance of the classifier's penultimate features against real reference
//    images (the test split): do the images, as a set, look like real ones?
//  - the floor: the same distance for an equally sized random set of *real* training
//    images. The Fréchet distance of a finite sample is biased upwards, the more so the
//    smaller the sample, so a figure only means something next to the floor for the same
//    count: a perfect generator scores about the floor, not 0.
//
// The evaluation itself takes tensors (evaluate_sample_quality), so that images generated
// in-process are judged exactly like images read from files.
#include <torch/torch.h>

#include <string>
#include <vector>

#include "data/dataset.h"
#include "eval/classifier.h"
#include "io/json.h"

namespace maskgit {

// The PNG text chunk that carries a generated image's intended class id.
constexpr const char* kPngClassKey = "maskgit:class";
// Floor sets larger than this cost time and change the figure little.
constexpr int64_t kMaxFloorCount = 10000;

struct LabeledSamples {
  torch::Tensor images;              // [N, C, H, W] float in [0, 1]
  torch::Tensor labels;              // [N] int64, the intended classes
  std::vector<std::string> sources;  // the file of each image
};

// Generated images from a directory, either
//  - with one sub-folder per class, named by the class name, the class id, or the name
//    ignoring case and punctuation ("t-shirt_top" for "T-shirt/top", whose '/' cannot be in
//    a folder name); the folder decides the class; or
//  - flat, holding PNG files whose "maskgit:class" text chunk gives the class id.
// Every image is converted to the classifier's channels and must have its size. Throws
// Error(bad_input) naming the file or folder: no class, a class out of range, an unknown
// class folder, loose files beside class folders, an empty directory, a bad image.
LabeledSamples read_labeled_samples(const std::string& directory, const std::vector<std::string>& class_names,
                                    const ClassifierConfig& config);
// Explicit PNG files, each with its class in the "maskgit:class" text chunk.
LabeledSamples read_labeled_sample_files(const std::vector<std::string>& files,
                                         const std::vector<std::string>& class_names, const ClassifierConfig& config);

struct ReferenceOptions {
  std::string path = kFashionMnistDir;  // IDX directory/file or image folder
  std::string split = "t10k";
  std::string floor_path;               // empty: the same as `path`
  std::string floor_split = "train";
  int64_t floor_count = 0;              // 0: as many as the evaluated images, at most kMaxFloorCount
  uint64_t seed = 1;                    // picks the floor subset
};

struct ReferenceSets {
  LabeledImages reference;
  torch::Tensor floor;        // [M, C, H, W]
  std::string reference_name; // "PATH (split)"
  std::string floor_name;
};

// Loads the reference images and a random subset of the floor data, in the classifier's
// geometry. InvalidArgument("floor_count") when it is negative or more than the floor data has.
ReferenceSets load_reference_sets(const ReferenceOptions& options, const ClassifierConfig& config,
                                  int64_t sample_count);

struct ClassAccuracy {
  std::vector<int64_t> images;     // per intended class
  std::vector<int64_t> correct;    // per intended class
  std::vector<int64_t> predicted;  // how often each class was predicted, whatever was intended
  int64_t total_images = 0;
  int64_t total_correct = 0;

  double accuracy() const;
  // NaN for a class without images (written as null in JSON).
  double class_accuracy(size_t class_id) const;
};

// Tallies predictions (int64 [N]) against labels (int64 [N]).
ClassAccuracy tally_predictions(const torch::Tensor& predicted, const torch::Tensor& labels, int64_t num_classes);

struct SampleQuality {
  std::vector<std::string> class_names;
  ClassAccuracy classes;
  double frechet_distance = 0;  // NaN when there are fewer than 2 images
  double floor_distance = 0;    // NaN when the floor set has fewer than 2 images
  double reference_accuracy = 0;  // the classifier on the reference set; NaN if its classes differ
  int64_t reference_images = 0;
  int64_t floor_images = 0;
  std::string reference_name;
  std::string floor_name;
  double seconds = 0;

  int64_t images() const { return classes.total_images; }
  double accuracy() const { return classes.accuracy(); }
  // {"images", "accuracy", "frechet_distance", "floor_distance", "reference": {...},
  //  "floor": {...}, "classes": [{"id", "name", "images", "accuracy", "predicted"}...]}
  Json to_json() const;
};

// `images` [N, C, H, W] in [0, 1] in the classifier's geometry, `labels` [N] the intended
// class ids (each in 0..num_classes-1, else Error(bad_input)).
SampleQuality evaluate_sample_quality(LoadedClassifier& classifier, const torch::Tensor& images,
                                      const torch::Tensor& labels, const ReferenceSets& references,
                                      int64_t batch_size, const torch::Device& device);

}  // namespace maskgit
