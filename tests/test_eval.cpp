#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "common/error.h"
#include "compat/torch_compat.h"
#include "eval/classifier.h"
#include "eval/frechet.h"
#include "eval/sample_quality.h"
#include "io/atomic_file.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "io/tensor_io.h"
#include "training/classifier_trainer.h"
#include "training/interrupt.h"

#include "test_support.h"

// Catch2 comes last: LibTorch pulls in glog, whose CHECK macro would replace Catch's.
#include <catch2/catch.hpp>

#include "test_errors.h"

using namespace maskgit;
using maskgit::testing::require_error;
namespace fs = std::filesystem;

namespace {

FeatureStats gaussian(std::vector<double> mean, const torch::Tensor& covariance) {
  FeatureStats stats;
  stats.mean = torch::tensor(mean, torch::kFloat64);
  stats.covariance = covariance.to(torch::kFloat64);
  stats.count = 1000;
  return stats;
}

// 8×8 grey pictures in two classes, horizontal (0) and vertical (1) bars at random
// positions, with a little noise so that no two images are identical.
LabeledImages make_bars(int64_t per_class, uint64_t seed) {
  auto generator = compat::make_cpu_generator(seed);
  std::vector<torch::Tensor> images;
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < per_class; ++i) {
    for (int64_t cls = 0; cls < 2; ++cls) {
      torch::Tensor image = 0.1 * torch::rand({1, 8, 8}, generator);
      const int64_t position = torch::randint(0, 7, {1}, generator).item<int64_t>();
      if (cls == 0) image.slice(1, position, position + 2).fill_(1.0);
      else image.slice(2, position, position + 2).fill_(1.0);
      images.push_back(image);
      labels.push_back(cls);
    }
  }
  LabeledImages out;
  out.images = torch::stack(images);
  out.labels = torch::tensor(labels, torch::kLong);
  out.class_names = {"horizontal", "vertical"};
  return out;
}

fs::path write_image_folder(const LabeledImages& data, const fs::path& root) {
  for (int64_t i = 0; i < data.images.size(0); ++i) {
    const fs::path folder = root / data.class_names[static_cast<size_t>(data.labels[i].item<int64_t>())];
    fs::create_directories(folder);
    write_png((folder / fmt::format("{:03}.png", i)).string(), data.images[i]);
  }
  return root;
}

ClassifierTrainOptions tiny_options(const fs::path& data, const fs::path& out) {
  ClassifierTrainOptions options;
  options.data.path = data.string();
  options.out_dir = out.string();
  options.config.width_multiplier = 0.25;
  options.config.feature_dim = 16;
  options.config.dropout = 0.1;
  options.batch_size = 16;
  options.learning_rate = 3e-3;
  options.warmup_steps = 5;
  options.log_every = 10;
  options.checkpoint_every = 10;
  options.quiet = true;
  return options;
}

// Runs `body`, which must throw a maskgit::Error with `code` whose message contains every
// needle.
}  // namespace

TEST_CASE("the Fréchet distance of a set with itself is 0", "[frechet]") {
  torch::manual_seed(3);
  const torch::Tensor features = torch::randn({300, 6}).matmul(torch::randn({6, 6})) + 2.0;
  const FeatureStats stats = feature_stats(features);
  CHECK(frechet_distance(stats, stats) == Approx(0.0).margin(1e-9));
}

TEST_CASE("feature statistics are the mean and the unbiased covariance", "[frechet]") {
  const torch::Tensor features = torch::tensor({1.0, 2.0, 3.0, 6.0, 5.0, 4.0}, torch::kFloat64).view({3, 2});
  const FeatureStats stats = feature_stats(features);
  CHECK(stats.count == 3);
  CHECK(stats.mean[0].item<double>() == Approx(3.0));
  CHECK(stats.mean[1].item<double>() == Approx(4.0));
  // Column 0: 1, 3, 5; column 1: 2, 6, 4.
  CHECK(stats.covariance[0][0].item<double>() == Approx(4.0));
  CHECK(stats.covariance[1][1].item<double>() == Approx(4.0));
  CHECK(stats.covariance[0][1].item<double>() == Approx(2.0));
  CHECK(stats.covariance[1][0].item<double>() == Approx(2.0));
  CHECK_THROWS(feature_stats(torch::zeros({1, 2})));
}

TEST_CASE("the Fréchet distance of Gaussians matches the closed form", "[frechet]") {
  SECTION("one dimension: (μ1 − μ2)² + (σ1 − σ2)²") {
    const FeatureStats a = gaussian({1.5}, torch::full({1, 1}, 4.0));  // σ = 2
    const FeatureStats b = gaussian({-0.5}, torch::full({1, 1}, 0.25));  // σ = 0.5
    CHECK(frechet_distance(a, b) == Approx(4.0 + 2.25));
  }
  SECTION("diagonal covariances: per-coordinate sums") {
    const FeatureStats a = gaussian({0.0, 1.0, 2.0}, torch::diag(torch::tensor({1.0, 4.0, 9.0}, torch::kFloat64)));
    const FeatureStats b = gaussian({1.0, 1.0, 0.0}, torch::diag(torch::tensor({4.0, 1.0, 9.0}, torch::kFloat64)));
    CHECK(frechet_distance(a, b) == Approx((1.0 + 0.0 + 4.0) + (1.0 + 1.0 + 0.0)));
  }
  SECTION("covariances diagonal in a shared rotated basis") {
    torch::manual_seed(5);
    const torch::Tensor rotation = std::get<0>(torch::linalg_qr(torch::randn({4, 4}, torch::kFloat64)));
    const torch::Tensor da = torch::tensor({0.5, 1.0, 2.0, 3.0}, torch::kFloat64);
    const torch::Tensor db = torch::tensor({1.5, 0.2, 2.0, 0.1}, torch::kFloat64);
    const FeatureStats a = gaussian({0, 0, 0, 0}, rotation.matmul(torch::diag(da)).matmul(rotation.t()));
    const FeatureStats b = gaussian({0, 1, 0, 0}, rotation.matmul(torch::diag(db)).matmul(rotation.t()));
    const double expected = 1.0 + (da.sqrt() - db.sqrt()).pow(2).sum().item<double>();
    CHECK(frechet_distance(a, b) == Approx(expected).epsilon(1e-9));
  }
  SECTION("a singular covariance (rank-deficient features) is fine") {
    const FeatureStats a = gaussian({0, 0}, torch::tensor({1.0, 1.0, 1.0, 1.0}, torch::kFloat64).view({2, 2}));
    const FeatureStats b = gaussian({0, 0}, torch::zeros({2, 2}, torch::kFloat64));
    CHECK(frechet_distance(a, b) == Approx(2.0));
  }
}

TEST_CASE("the Fréchet distance is symmetric", "[frechet]") {
  torch::manual_seed(11);
  const FeatureStats a = feature_stats(torch::randn({200, 5}).matmul(torch::randn({5, 5})));
  const FeatureStats b = feature_stats(torch::randn({150, 5}).matmul(torch::randn({5, 5})) + 0.5);
  const double ab = frechet_distance(a, b);
  CHECK(ab > 0.1);
  CHECK(frechet_distance(b, a) == Approx(ab).epsilon(1e-9));
  CHECK_THROWS(frechet_distance(a, feature_stats(torch::randn({10, 4}))));
}

TEST_CASE("the classifier maps images to features and logits", "[classifier]") {
  ClassifierConfig config;
  Classifier classifier(config);
  const torch::Tensor images = torch::rand({3, 1, 28, 28});
  CHECK(classifier->features(images).sizes() == torch::IntArrayRef({3, 128}));
  CHECK(classifier->forward(images).sizes() == torch::IntArrayRef({3, 10}));
  // Odd sizes floor through the poolings.
  config.height = 9;
  config.width = 13;
  config.channels = 3;
  config.num_classes = 4;
  Classifier odd(config);
  CHECK(odd->forward(torch::rand({2, 3, 9, 13})).sizes() == torch::IntArrayRef({2, 4}));
  config.num_classes = 1;
  CHECK_THROWS_WITH(config.validate(), Catch::Contains("classifier.num_classes"));
}

TEST_CASE("the classifier's parameter_count() is what it allocates, and is bounded", "[classifier]") {
  ClassifierConfig config;
  config.height = 9;
  config.width = 13;
  config.width_multiplier = 0.5;
  int64_t allocated = 0;
  for (const auto& p : Classifier(config)->parameters()) allocated += p.numel();
  CHECK(config.parameter_count() == allocated);
  config.height = config.width = 4096;
  config.feature_dim = 65536;
  CHECK_THROWS_WITH(config.validate(), Catch::Contains("classifier.feature_dim") && Catch::Contains("parameters"));
}

TEST_CASE("a tiny classifier learns the bars and writes a usable directory", "[classifier][training]") {
  torch::set_num_threads(1);
  const fs::path dir = testing::fresh_temp_dir("eval-train");
  const fs::path data = write_image_folder(make_bars(32, 1), dir / "data");
  ClassifierTrainOptions options = tiny_options(data, dir / "classifier");
  options.steps = 60;
  const ClassifierTrainResult result = train_classifier(options);
  CHECK(result.steps_done == 60);
  CHECK_FALSE(result.interrupted);
  CHECK(result.last_loss < result.first_loss);

  LoadedClassifier loaded = read_classifier(options.out_dir, torch::kCPU);
  CHECK((loaded.class_names == std::vector<std::string>{"horizontal", "vertical"}));
  CHECK(loaded.config().height == 8);
  CHECK(loaded.config().num_classes == 2);
  const LabeledImages held_out = make_bars(50, 99);
  const double accuracy = evaluate_classifier_accuracy(loaded.model, held_out.images, held_out.labels, 32, torch::kCPU);
  INFO("held-out accuracy " << accuracy);
  CHECK(accuracy >= 0.95);
  CHECK(fs::exists(options.resolved_metrics_path()));
  fs::remove_all(dir);
}

TEST_CASE("an evaluation set is measured after training", "[classifier][training]") {
  torch::set_num_threads(1);
  const fs::path dir = testing::fresh_temp_dir("eval-evalset");
  const fs::path data = write_image_folder(make_bars(16, 1), dir / "data");
  const fs::path test = write_image_folder(make_bars(8, 2), dir / "test");
  ClassifierTrainOptions options = tiny_options(data, dir / "classifier");
  options.steps = 20;
  options.evaluation.path = test.string();
  const ClassifierTrainResult result = train_classifier(options);
  CHECK(result.evaluation_images == 16);
  CHECK(result.evaluation_accuracy >= 0.0);
  CHECK(result.evaluation_accuracy <= 1.0);
  options.evaluation.path = (dir / "missing").string();
  options.overwrite = true;  // the directory holds the run above
  require_error([&] { train_classifier(options); }, ExitCode::bad_input, {"missing"});
  fs::remove_all(dir);
}

TEST_CASE("a resumed classifier run ends exactly where an uninterrupted one does", "[classifier][training]") {
  torch::set_num_threads(1);
  const fs::path dir = testing::fresh_temp_dir("eval-resume");
  const fs::path data = write_image_folder(make_bars(16, 1), dir / "data");

  ClassifierTrainOptions straight = tiny_options(data, dir / "straight");
  straight.steps = 30;
  straight.augment = true;  // both random streams (dropout, augmentation) must resume too
  train_classifier(straight);

  ClassifierTrainOptions split = tiny_options(data, dir / "split");
  split.steps = 30;
  split.augment = true;
  split.stop_after = 20;
  CHECK(train_classifier(split).steps_done == 20);
  split.stop_after = -1;
  split.resume = true;
  split.seed = 999;        // ignored on resume: the checkpoint's seed wins
  split.augment = false;   // likewise
  CHECK(train_classifier(split).steps_done == 30);

  const SafetensorsFile a = read_safetensors((dir / "straight" / kClassifierWeightsFile).string());
  const SafetensorsFile b = read_safetensors((dir / "split" / kClassifierWeightsFile).string());
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    INFO(a.tensors[i].name);
    CHECK(torch::equal(entry_to_tensor(a.tensors[i]), entry_to_tensor(b.tensors[i])));  // bit for bit
  }
  CHECK((testing::metrics_log_steps(split.resolved_metrics_path()) == std::vector<int64_t>{10, 20, 30}));
  fs::remove_all(dir);
}

TEST_CASE("an interrupt saves a classifier checkpoint and stops", "[classifier][training]") {
  torch::set_num_threads(1);
  const fs::path dir = testing::fresh_temp_dir("eval-interrupt");
  const fs::path data = write_image_folder(make_bars(16, 1), dir / "data");
  ClassifierTrainOptions options = tiny_options(data, dir / "classifier");
  options.epochs = 100;
  request_interrupt(true);
  const ClassifierTrainResult result = train_classifier(options);
  request_interrupt(false);
  CHECK(result.interrupted);
  CHECK(result.steps_done == 1);  // the step in progress completes (engine.h) and is saved
  CHECK(read_safetensors(options.state_path()).metadata.at("step") == "1");

  options.resume = true;
  options.out_dir = (dir / "none").string();
  require_error([&] { train_classifier(options); }, ExitCode::bad_input, {"resume: no checkpoint", "classifier.safetensors"});
  fs::remove_all(dir);
}

TEST_CASE("classifier directories round-trip and corrupt ones are named", "[classifier]") {
  const fs::path dir = testing::fresh_temp_dir("eval-dir");
  ClassifierConfig config;
  config.height = 12;
  config.width = 12;
  config.num_classes = 3;
  config.width_multiplier = 0.25;
  config.feature_dim = 8;
  torch::manual_seed(1);
  Classifier classifier(config);
  classifier->eval();
  const std::vector<std::string> names = {"a", "b", "c"};
  save_classifier((dir / "ok").string(), classifier, names);

  LoadedClassifier loaded = read_classifier((dir / "ok").string(), torch::kCPU);
  CHECK(loaded.class_names == names);
  CHECK(loaded.config().feature_dim == 8);
  CHECK(loaded.config().width_multiplier == Approx(0.25));
  const torch::Tensor images = torch::rand({4, 1, 12, 12});
  CHECK(torch::allclose(loaded.model->forward(images), classifier->forward(images)));
  const ClassifierOutputs outputs = classify_in_batches(loaded.model, images, 3, torch::kCPU);
  CHECK(outputs.features.sizes() == torch::IntArrayRef({4, 8}));
  CHECK(torch::allclose(outputs.logits, classifier->forward(images), 1e-5, 1e-6));

  const std::string config_text = read_file_bytes((dir / "ok" / kClassifierConfigFile).string());
  auto corrupt = [&](const std::string& name, const std::string& from, const std::string& to) {
    const fs::path copy = dir / name;
    fs::copy(dir / "ok", copy);
    std::string text = config_text;
    const size_t at = text.find(from);
    REQUIRE(at != std::string::npos);
    text.replace(at, from.size(), to);
    write_file_atomic((copy / kClassifierConfigFile).string(), text);
    return copy.string();
  };
  const std::string wrong_format = corrupt("format", "maskgit-cpp-classifier", "maskgit-cpp");
  require_error([&] { read_classifier(wrong_format, torch::kCPU); }, ExitCode::bad_input, {"config.json", "format"});
  const std::string bad_json = corrupt("json", "{", "[");
  require_error([&] { read_classifier(bad_json, torch::kCPU); }, ExitCode::bad_input, {"config.json", "invalid JSON"});
  const std::string bad_type = corrupt("type", "\"num_classes\": 3", "\"num_classes\": \"3\"");
  require_error([&] { read_classifier(bad_type, torch::kCPU); }, ExitCode::bad_input, {"config.json", "classifier.num_classes"});
  const std::string too_many = corrupt("count", "\"num_classes\": 3", "\"num_classes\": 4");
  require_error([&] { read_classifier(too_many, torch::kCPU); }, ExitCode::bad_input, {"config.json", "class_names"});
  const std::string size_mismatch = corrupt("size", "\"width\": 12", "\"width\": 16");
  require_error([&] { read_classifier(size_mismatch, torch::kCPU); }, ExitCode::bad_input, {"config.json", "image.width"});
  const std::string wider = corrupt("wider", "\"feature_dim\": 8", "\"feature_dim\": 9");
  require_error([&] { read_classifier(wider, torch::kCPU); }, ExitCode::bad_input, {"classifier.safetensors", "has shape"});
  const fs::path no_weights = dir / "noweights";
  fs::copy(dir / "ok", no_weights);
  fs::remove(no_weights / kClassifierWeightsFile);
  require_error([&] { read_classifier(no_weights.string(), torch::kCPU); }, ExitCode::bad_input, {"classifier.safetensors"});
  require_error([&] { read_classifier((dir / "absent").string(), torch::kCPU); }, ExitCode::bad_input, {"absent"});
  fs::remove_all(dir);
}

TEST_CASE("generated images are read with their intended classes", "[samples]") {
  const fs::path dir = testing::fresh_temp_dir("eval-samples");
  ClassifierConfig config;
  config.height = 8;
  config.width = 8;
  config.num_classes = 3;
  const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Bag"};
  const torch::Tensor image = torch::rand({1, 8, 8});

  SECTION("a flat folder of PNGs with maskgit:class") {
    fs::create_directories(dir / "flat");
    write_png((dir / "flat" / "b.png").string(), image, {{kPngClassKey, "2"}});
    write_png((dir / "flat" / "a.png").string(), image, {{kPngClassKey, "0"}});
    const LabeledSamples samples = read_labeled_samples((dir / "flat").string(), names, config);
    CHECK(samples.images.sizes() == torch::IntArrayRef({2, 1, 8, 8}));
    CHECK(samples.labels[0].item<int64_t>() == 0);  // sorted by name
    CHECK(samples.labels[1].item<int64_t>() == 2);
    const LabeledSamples files = read_labeled_sample_files({(dir / "flat" / "b.png").string()}, names, config);
    CHECK(files.labels[0].item<int64_t>() == 2);
  }
  SECTION("class sub-folders by id, by name, and by name without punctuation") {
    for (const char* folder : {"1", "Bag", "t-shirt_top"}) {
      fs::create_directories(dir / "classes" / folder);
      write_png((dir / "classes" / folder / "x.png").string(), image, {{kPngClassKey, "1"}});
    }
    const LabeledSamples samples = read_labeled_samples((dir / "classes").string(), names, config);
    // Folders sorted: "1", "Bag", "t-shirt_top"; the folder decides, not the text chunk.
    CHECK(samples.labels.equal(torch::tensor({1, 2, 0}, torch::kLong)));
  }
  SECTION("missing, unparsable and out-of-range classes are named") {
    fs::create_directories(dir / "bad");
    write_png((dir / "bad" / "nolabel.png").string(), image);
    write_png((dir / "bad" / "big.png").string(), image, {{kPngClassKey, "3"}});
    write_png((dir / "bad" / "word.png").string(), image, {{kPngClassKey, "bag"}});
    require_error([&] { read_labeled_sample_files({(dir / "bad" / "nolabel.png").string()}, names, config); },
                  ExitCode::bad_input, {"nolabel.png", "maskgit:class"});
    require_error([&] { read_labeled_sample_files({(dir / "bad" / "big.png").string()}, names, config); },
                  ExitCode::bad_input, {"big.png", "out of range"});
    require_error([&] { read_labeled_sample_files({(dir / "bad" / "word.png").string()}, names, config); },
                  ExitCode::bad_input, {"word.png", "not a class id"});
    require_error([&] { read_labeled_samples((dir / "bad").string(), names, config); }, ExitCode::bad_input,
                  {"big.png"});
    fs::create_directories(dir / "folders" / "7");
    write_png((dir / "folders" / "7" / "x.png").string(), image);
    require_error([&] { read_labeled_samples((dir / "folders").string(), names, config); }, ExitCode::bad_input,
                  {"7", "out of range"});
    fs::create_directories(dir / "unknown" / "Sneaker");
    write_png((dir / "unknown" / "Sneaker" / "x.png").string(), image);
    require_error([&] { read_labeled_samples((dir / "unknown").string(), names, config); }, ExitCode::bad_input,
                  {"Sneaker", "not a class"});
    fs::create_directories(dir / "mixed" / "0");
    write_png((dir / "mixed" / "0" / "x.png").string(), image);
    write_png((dir / "mixed" / "loose.png").string(), image, {{kPngClassKey, "0"}});
    require_error([&] { read_labeled_samples((dir / "mixed").string(), names, config); }, ExitCode::bad_input,
                  {"loose.png"});
    fs::create_directories(dir / "empty");
    require_error([&] { read_labeled_samples((dir / "empty").string(), names, config); }, ExitCode::bad_input,
                  {"empty"});
    write_png((dir / "bad" / "large.png").string(), torch::rand({1, 9, 8}), {{kPngClassKey, "0"}});
    require_error([&] { read_labeled_sample_files({(dir / "bad" / "large.png").string()}, names, config); },
                  ExitCode::bad_input, {"large.png"});
  }
  fs::remove_all(dir);
}

TEST_CASE("sample quality: accuracy, per-class accuracy and distances against a floor", "[samples]") {
  torch::set_num_threads(1);
  const fs::path dir = testing::fresh_temp_dir("eval-quality");
  const fs::path data = write_image_folder(make_bars(32, 1), dir / "data");
  ClassifierTrainOptions options = tiny_options(data, dir / "classifier");
  options.steps = 60;
  train_classifier(options);
  LoadedClassifier classifier = read_classifier(options.out_dir, torch::kCPU);

  ReferenceOptions reference;
  reference.path = write_image_folder(make_bars(40, 3), dir / "reference").string();
  reference.floor_path = data.string();
  const LabeledImages real = make_bars(20, 4);
  const ReferenceSets sets = load_reference_sets(reference, classifier.config(), real.images.size(0));
  CHECK(sets.reference.images.size(0) == 80);
  CHECK(sets.floor.size(0) == 40);  // as many as the evaluated images

  const SampleQuality good = evaluate_sample_quality(classifier, real.images, real.labels, sets, 16, torch::kCPU);
  CHECK(good.images() == 40);
  CHECK(good.accuracy() >= 0.95);
  CHECK(good.reference_accuracy >= 0.95);
  CHECK(good.classes.images == std::vector<int64_t>{20, 20});
  CHECK(good.classes.class_accuracy(0) >= 0.9);
  CHECK(std::isfinite(good.frechet_distance));
  CHECK(std::isfinite(good.floor_distance));

  // The same images asked for the other class, and images that are all blank.
  const SampleQuality swapped = evaluate_sample_quality(classifier, real.images, 1 - real.labels, sets, 16, torch::kCPU);
  CHECK(swapped.accuracy() <= 0.05);
  CHECK(swapped.frechet_distance == Approx(good.frechet_distance));
  const torch::Tensor blank = torch::zeros_like(real.images);
  const SampleQuality bad = evaluate_sample_quality(classifier, blank, real.labels, sets, 16, torch::kCPU);
  CHECK(bad.frechet_distance > good.frechet_distance);
  CHECK(bad.accuracy() == Approx(0.5));  // one class predicted for all: right for half of them

  const Json json = good.to_json();
  CHECK(json.at("images").get<int64_t>() == 40);
  CHECK(json.at("classes").size() == 2);
  CHECK(json.at("classes")[1].at("name").get<std::string>() == "vertical");
  CHECK(json.at("reference").at("images").get<int64_t>() == 80);
  CHECK(parse_json(dump_json(json)) == json);

  require_error([&] { evaluate_sample_quality(classifier, real.images, real.labels + 1, sets, 16, torch::kCPU); },
                ExitCode::bad_input, {"classes"});
  reference.floor_count = 1000;
  require_error([&] { load_reference_sets(reference, classifier.config(), 10); }, ExitCode::usage,
                {"floor_count: 1000 is more than the"});
  const auto floor = testing::invalid_argument_of([&] { load_reference_sets(reference, classifier.config(), 10); });
  CHECK(floor.argument == "floor_count");
  CHECK(floor.message.find("--") == std::string::npos);
  fs::remove_all(dir);
}
