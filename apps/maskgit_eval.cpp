// maskgit-eval: judges generated images with the evaluation classifier (class accuracy and
// Fréchet distance of classifier features against real images, next to its real-data floor).
#include <fmt/format.h>

#include <cmath>

#include "common/console.h"
#include "cli/common.h"
#include "cli/options.h"
#include "cli/progress.h"
#include "cli/sampler_options.h"
#include "generation/sampler.h"
#include "model/model_dir.h"
#include "common/error.h"
#include "data/dataset.h"
#include "eval/classifier.h"
#include "eval/sample_quality.h"
#include "io/json.h"

namespace {

using namespace maskgit;

std::string percent(double fraction) {
  return std::isfinite(fraction) ? fmt::format("{:.1f}%", 100.0 * fraction) : "n/a";
}

std::string number(double value) { return std::isfinite(value) ? fmt::format("{:.3f}", value) : "n/a"; }

size_t name_width(const std::vector<std::string>& class_names) {
  size_t width = 5;  // "class"
  for (const auto& name : class_names) width = std::max(width, name.size());
  return width;
}

// Samples every class of `model_dir` (whose class names must match the classifier's).
LabeledSamples sample_model_for_evaluation(const std::string& model_dir, const LoadedClassifier& classifier,
                                           int64_t per_class, uint64_t seed, const DecodeOptions& decode,
                                           torch::ScalarType dtype, int64_t batch_size, const torch::Device& device) {
  const ModelConfig config = read_model_config(model_dir);
  if (config.class_names != classifier.class_names)
    throw_usage(fmt::format("--sample-model: {} has other classes than the classifier", model_dir));
  check_seed_range(seed, config.num_classes() * per_class, "--sample-seed");
  VQTokenizer tokenizer = load_tokenizer(config, device);
  BidirectionalTransformer transformer = load_transformer(config, device, dtype);
  std::vector<int64_t> classes;
  std::vector<uint64_t> seeds;
  for (int64_t c = 0; c < config.num_classes(); ++c)
    for (int64_t k = 0; k < per_class; ++k) {
      seeds.push_back(seed + classes.size());
      classes.push_back(c);
    }
  std::vector<torch::Tensor> images;
  ProgressCounter progress("sampled", static_cast<int64_t>(classes.size()));
  generate_images(transformer, tokenizer, config.image_height, config.image_width, classes, seeds, decode, batch_size,
                  device, [&](int64_t begin, const torch::Tensor&, const torch::Tensor& batch) {
                    images.push_back(batch);
                    progress.update(begin + batch.size(0));
                  });
  LabeledSamples samples;
  samples.images = torch::cat(images);
  samples.labels = torch::tensor(classes, torch::kLong);
  return samples;
}

// `decoding`: the sampler flags a --sample-model run used (empty for images read from files).
void print_quality(const SampleQuality& quality, const std::string& classifier_dir, bool json_output,
                   const std::vector<std::string>& decoding = {}) {
  if (json_output) {
    Json root = Json::object();
    root["classifier"] = classifier_dir;
    if (!decoding.empty()) root["decoding"] = decoding;
    const Json fields = quality.to_json();
    for (const auto& [key, value] : fields.items()) root[key] = value;
    print_stdout("{}\n", dump_json(root));
    return;
  }
  print_stdout("classifier        {}\n", classifier_dir);
  if (!decoding.empty()) print_stdout("decoding          {}\n", fmt::join(decoding, " "));
  print_stdout("images            {}\n", quality.images());
  print_stdout("class accuracy    {}  (the intended class is the one predicted)\n", percent(quality.accuracy()));
  print_stdout("Fréchet distance  {}  (classifier features, against {} images of {})\n", number(quality.frechet_distance),
             quality.reference_images, quality.reference_name);
  print_stdout("floor             {}  ({} real images of {}, against the same reference)\n", number(quality.floor_distance),
             quality.floor_images, quality.floor_name);
  print_stdout("classifier on the reference: {} accuracy\n\n", percent(quality.reference_accuracy));
  const size_t width = name_width(quality.class_names);
  print_stdout("{:>3}  {:<{}}  {:>6}  {:>8}  {:>9}\n", "id", "class", width, "images", "accuracy", "predicted");
  for (size_t i = 0; i < quality.class_names.size(); ++i)
    print_stdout("{:>3}  {:<{}}  {:>6}  {:>8}  {:>9}\n", i, quality.class_names[i], width, quality.classes.images[i],
               percent(quality.classes.class_accuracy(i)), quality.classes.predicted[i]);
}

// The classifier on real labelled images: how far its judgement can be trusted.
void run_self_test(LoadedClassifier& classifier, const ReferenceOptions& reference, int64_t limit,
                   int64_t batch_size, const torch::Device& device, bool json_output) {
  DatasetSpec spec;
  spec.path = reference.path;
  spec.split = reference.split;
  spec.limit = limit;
  spec.channels = static_cast<int>(classifier.config().channels);
  spec.width = static_cast<int>(classifier.config().width);
  spec.height = static_cast<int>(classifier.config().height);
  const LabeledImages data = load_dataset(spec);
  if (data.class_names != classifier.class_names)
    throw_bad_input(fmt::format("{}: its classes differ from those of the classifier {}", reference.path,
                                classifier.directory));
  const ClassifierOutputs outputs = classify_in_batches(classifier.model, data.images, batch_size, device);
  const ClassAccuracy tally = tally_predictions(outputs.logits.argmax(1), data.labels, classifier.num_classes());
  const std::string data_name = fmt::format("{} ({})", reference.path, reference.split);
  if (json_output) {
    Json classes = Json::array();
    for (size_t i = 0; i < classifier.class_names.size(); ++i)
      classes.push_back(Json{{"id", static_cast<int64_t>(i)},
                             {"name", classifier.class_names[i]},
                             {"images", tally.images[i]},
                             {"accuracy", tally.class_accuracy(i)}});
    print_stdout("{}\n", dump_json(Json{{"classifier", classifier.directory},
                                        {"data", data_name},
                                        {"images", tally.total_images},
                                        {"accuracy", tally.accuracy()},
                                        {"classes", classes}}));
    return;
  }
  print_stdout("classifier  {}\ndata        {}\nimages      {}\naccuracy    {}\n\n", classifier.directory, data_name,
             tally.total_images, fmt::format("{:.2f}%", 100.0 * tally.accuracy()));
  const size_t width = name_width(classifier.class_names);
  print_stdout("{:>3}  {:<{}}  {:>6}  {:>8}\n", "id", "class", width, "images", "accuracy");
  for (size_t i = 0; i < classifier.class_names.size(); ++i)
    print_stdout("{:>3}  {:<{}}  {:>6}  {:>8}\n", i, classifier.class_names[i], width, tally.images[i],
               percent(tally.class_accuracy(i)));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Judge generated images with the evaluation classifier: how often the intended class is the one\n"
               "predicted, and the Fréchet distance of classifier features against real reference images, next\n"
               "to the floor (the same distance for as many real training images).\n"
               "Images: --images DIR (one sub-folder per class, named by class id or name; or PNGs whose\n"
               "\"maskgit:class\" text chunk holds the class id), or such PNG files as arguments.",
               "maskgit-eval"};
  std::string classifier_dir = default_classifier_dir();
  std::string images_dir;
  std::vector<std::string> files;
  ReferenceOptions reference;
  RuntimeOptions runtime;
  int64_t batch_size = 256;
  bool json_output = false;
  bool self_test = false;
  int64_t self_test_limit = -1;
  std::string sample_model;
  int64_t per_class = 1000;
  uint64_t sample_seed = 0;
  SamplerCliOptions sampler;

  ToolOptions cli(app, Tool::eval);
  cli.add("classifier", classifier_dir);
  cli.add_no_default("images", images_dir);
  cli.add_no_default("input", files);
  cli.add_no_default("inputs", files);
  cli.add("reference", reference.path);
  cli.add("reference_split", reference.split);
  cli.add_no_default("floor_data", reference.floor_path);
  cli.add("floor_split", reference.floor_split);
  cli.add("floor_count", reference.floor_count);
  cli.add("seed", reference.seed);
  cli.add("batch_size", batch_size);
  cli.add_flag("json", json_output);
  cli.add_flag("self_test", self_test);
  cli.add("limit", self_test_limit);
  cli.add_no_default("sample_model", sample_model);
  cli.add("per_class", per_class);
  cli.add("sample_seed", sample_seed);
  add_sampler_options(cli, sampler);
  add_runtime_options(cli, runtime);

  return run_tool(cli, argc, argv, [&] {
    const bool have_images = !images_dir.empty() || !files.empty() || !sample_model.empty();
    if (self_test && have_images) throw_usage("--self-test judges the classifier itself; give no images with it");
    if (self_test_limit != -1 && !self_test) throw_usage("--limit: only with --self-test");
    if (sampler.show_defaults && sample_model.empty())
      throw_usage("--show-defaults: only with --sample-model (the model whose decoding settings it shows)");
    if (sampler.release_defaults && sample_model.empty())
      throw_usage("--release-defaults: only with --sample-model (it sets how the model is sampled)");
    if (sampler.show_defaults) {
      // Before the classifier and the reference data are read: nothing but the settings.
      SamplerCliOptions resolved = sampler;
      const ModelConfig model = read_model_config(sample_model);
      decode_options_for_model(resolved, model);
      show_sampling_defaults(resolved, model, json_output);
      return;
    }
    if (self_test_limit == 0 || self_test_limit < -1) throw_usage("--limit: give a positive count (or -1 = all)");
    if (!self_test && !have_images) throw_usage("no images: give --images DIR or PNG files (or --self-test)");
    if (!images_dir.empty() && !files.empty()) throw_usage("give --images DIR or PNG files, not both");
    const torch::Device device = apply_runtime_options(runtime);
    LoadedClassifier classifier = read_classifier(classifier_dir, device);
    if (self_test) {
      run_self_test(classifier, reference, self_test_limit, batch_size, device, json_output);
      return;
    }
    if (!sample_model.empty() && (!images_dir.empty() || !files.empty()))
      throw_usage("--sample-model: give a model to sample or images to read, not both");
    LabeledSamples samples;
    std::vector<std::string> decoding;
    if (!sample_model.empty()) {
      // The model's decoding defaults for the sampler flags not given (config.json "sampling").
      const DecodeOptions decode = decode_options_for_model(sampler, read_model_config(sample_model));
      const torch::ScalarType dtype = forward_dtype(sampler, device);
      decoding = sampler_arguments(sampler, dtype);
      samples = sample_model_for_evaluation(sample_model, classifier, per_class, sample_seed, decode, dtype,
                                            batch_size, device);
    } else {
      samples = images_dir.empty() ? read_labeled_sample_files(files, classifier.class_names, classifier.config())
                                   : read_labeled_samples(images_dir, classifier.class_names, classifier.config());
    }
    const ReferenceSets references = load_reference_sets(reference, classifier.config(), samples.images.size(0));
    const SampleQuality quality =
        evaluate_sample_quality(classifier, samples.images, samples.labels, references, batch_size, device);
    print_quality(quality, classifier_dir, json_output, decoding);
  });
}
