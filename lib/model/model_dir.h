#pragma once
// A model is a directory: config.json (image geometry, class names, one section per stage)
// plus one safetensors file per stage. Loading validates the config field by field and the
// weights tensor by tensor, and names the file and field on any problem.
#include <torch/torch.h>

#include <optional>
#include <string>
#include <vector>

#include "io/json.h"
#include "tokenizer/config.h"
#include "tokenizer/vqgan.h"
#include "transformer/config.h"
#include "transformer/transformer.h"

namespace maskgit {

constexpr const char* kModelConfigFile = "config.json";
constexpr const char* kTokenizerWeightsFile = "tokenizer.safetensors";
constexpr const char* kTransformerWeightsFile = "transformer.safetensors";
constexpr int kModelFormatVersion = 1;
// config.json is read only up to this size (16 MiB; the release's 1,000 class names are ~30 KiB).
constexpr uint64_t kMaxConfigBytes = uint64_t{16} << 20;
// The largest tokenizer activation bound (tokenizer_activation_bound) accepted for one image,
// by read_model_config for the model's own size and check_tokenizer_image_size for inputs:
// 2^30 values, 4 GiB of float32 (the release's 512×512 model: 2^27).
constexpr int64_t kMaxActivation = int64_t{1} << 30;

// A model's decoding defaults: config.json's optional "sampling" section (the first five fields
// required when the section is there; temperature, guidance_scale and edit_guidance_scale
// optional, 1 when absent, guidance_schedule and edit_guidance_schedule optional, "constant"
// when absent, as sections written before they existed lack them). The tools take
// them for the sampler flags the user does not pass (--release-defaults: never); without the
// section, the tools' own defaults (the values below, the release's behaviour) apply.
// "Generation" is maskgit-sample, -inpaint and -outpaint (and maskgit-eval --sample-model);
// "editing" is maskgit-edit's class-conditional box edit. The schedule, choice temperature and
// temperature apply to both.
struct SamplingDefaults {
  int64_t steps = 8;                // generation: decoding steps T
  std::string schedule = "cosine";  // any --schedule value
  double choice_temperature = 4.5;  // τ0 of the keep/re-mask noise
  int64_t edit_steps = 12;          // editing: T ...
  int64_t edit_start_step = 2;      // ... starting at this step (ratios begin at (start + 1)/T)
  double temperature = 1.0;         // of the token distribution (--temperature)
  double guidance_scale = 1.0;      // generation's classifier-free guidance s (--cfg-scale; 1 = off)
  double edit_guidance_scale = 1.0; // editing's
  std::string guidance_schedule = "constant";       // generation's: constant or linear (--cfg-schedule)
  std::string edit_guidance_schedule = "constant";  // editing's

  // Bounds, shared with the sampler flags: steps in 1..kMaxSteps, a start step below its steps,
  // a choice temperature in 0..kMaxChoiceTemperature, a schedule parse_schedule accepts (a
  // custom list of at most kMaxCustomSteps).
  static constexpr int64_t kMaxSteps = 1024;
  static constexpr double kMaxChoiceTemperature = 1e6;
  static constexpr size_t kMaxCustomSteps = 65536;
  // The sampler flags' bounds for --temperature and --cfg-scale.
  static constexpr double kMinTemperature = 1e-3, kMaxTemperature = 1e3;
  static constexpr double kMaxGuidanceScale = 1e3;

  // Throws std::runtime_error naming the field (prefixed by `path`).
  void validate(const std::string& path = "sampling") const;
  Json to_json() const;  // Json(*this), see to_json() below
  // Every field required, unknown fields refused (a misspelt one must not silently do nothing).
  static SamplingDefaults from_json(const Json& json, const std::string& path = "sampling");
};

// nlohmann's conversions, found by argument-dependent lookup: `Json json = config;` writes every
// field in a fixed order, and `json.get<SamplingDefaults>()` reads through the static from_json (every field
// checked, errors naming the dotted path).
void to_json(Json& json, const SamplingDefaults& config);
void from_json(const Json& json, SamplingDefaults& config);

// Decoding settings for the release's ImageNet models (google-research/maskgit): cosine,
// choice temperature 4.5 and class-conditional editing in T = 12 steps from step 2 as the
// release's code does; generation in T = 8 steps at 256×256 and T = 12 at 512×512 (12 for any
// side above 256) as the paper reports (issue 10; the release's generate_samples defaults to 16).
SamplingDefaults release_sampling_defaults(int64_t image_size);

struct ModelConfig {
  std::string directory;
  int64_t image_width = 28;
  int64_t image_height = 28;
  int64_t image_channels = 1;
  std::vector<std::string> class_names;
  std::optional<TokenizerConfig> tokenizer;
  std::optional<TransformerConfig> transformer;
  std::optional<SamplingDefaults> sampling;  // config.json "sampling", when present
  // The whole parsed config.json, so that writing one stage keeps the other stages' sections.
  Json raw = Json::object();

  std::string path_of(const std::string& file) const;
  int64_t num_classes() const { return static_cast<int64_t>(class_names.size()); }
};

// An upper bound on the values one width × height image occupies in one tokenizer layer: the
// widest layer (filters × largest multiplier, or embedding_dim) at full resolution.
int64_t tokenizer_activation_bound(const TokenizerConfig& tokenizer, int64_t width, int64_t height);

// Before encoding or decoding an image of another size than the model's own (an input file, a
// token file, an outpainting canvas): each side in 1..kMaxImageSide and the activation bound at
// most kMaxActivation. Throws Error(bad_input) naming `source`.
void check_tokenizer_image_size(const ModelConfig& config, int64_t width, int64_t height, const std::string& source);

// Why `transformer` cannot model the token grids of `model`'s tokenizer (codebook size, grid
// of its image size, model.num_classes()) as "transformer.<field>: why", or "" when it can (or
// the model has no tokenizer; the classes are checked either way). Never throws.
std::string transformer_mismatch(const TransformerConfig& transformer, const ModelConfig& model);

// Reads and validates DIR/config.json. Throws Error(bad_input) naming the file and field.
ModelConfig read_model_config(const std::string& directory);
// What `directory` holds, by its config.json's "format": "maskgit-cpp" (a MaskGIT model),
// "maskgit-cpp-classifier" (a classifier, eval/classifier.h) or another string; "" when there is
// no config.json or it is not a JSON object with a string "format" (never throws). For a trainer
// that must not write one kind of directory over another.
std::string directory_format(const std::string& directory);
// A format string as words: "a MaskGIT model", "a classifier" or "something else".
std::string describe_directory_format(const std::string& format);
// Writes DIR/config.json atomically (creating DIR), merging into `config.raw`.
void write_model_config(const ModelConfig& config);

// Loads the tokenizer stage onto `device`, in eval mode. Throws Error(bad_input) when the
// model has no tokenizer section or its weights file is missing, corrupt or mismatched.
VQTokenizer load_tokenizer(const ModelConfig& config, const torch::Device& device);
// Saves tokenizer weights (weights only, atomically) as DIR/tokenizer.safetensors.
void save_tokenizer_weights(const ModelConfig& config, VQTokenizer& tokenizer);

// Loads the transformer stage onto `device`, in eval mode, with its weights converted to
// `dtype` (float32, bfloat16 or float16: the forward's precision); same errors as
// load_tokenizer.
BidirectionalTransformer load_transformer(const ModelConfig& config, const torch::Device& device,
                                          torch::ScalarType dtype = torch::kFloat32);
void save_transformer_weights(const ModelConfig& config, BidirectionalTransformer& transformer);

// Class ids from user words: each is a class id ("3") or a class name ("Sneaker", matched
// case-insensitively). Throws InvalidArgument("class") listing the names (or similar ones).
std::vector<int64_t> resolve_classes(const ModelConfig& config, const std::vector<std::string>& words);

// The model used when none is named: $MASKGIT_MODEL if set, else the project's shipped
// models/fashion-mnist (source tree, or <prefix>/share/maskgit-cpp/models next to the binary).
std::string default_model_dir();

}  // namespace maskgit
