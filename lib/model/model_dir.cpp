#include "model/model_dir.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <iterator>
#include <filesystem>

#include "common/error.h"
#include "decoding/schedule.h"
#include "io/atomic_file.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "io/tensor_io.h"

namespace maskgit {
namespace fs = std::filesystem;

std::string ModelConfig::path_of(const std::string& file) const {
  return (fs::path(directory) / file).string();
}

void SamplingDefaults::validate(const std::string& path) const {
  auto require = [&](bool ok, const char* field, const std::string& why) {
    if (!ok) throw std::runtime_error(fmt::format("{}.{}: {}", path, field, why));
  };
  require(steps >= 1 && steps <= kMaxSteps, "steps", fmt::format("{} is not in 1..{}", steps, kMaxSteps));
  require(edit_steps >= 1 && edit_steps <= kMaxSteps, "edit_steps",
          fmt::format("{} is not in 1..{}", edit_steps, kMaxSteps));
  require(edit_start_step >= 0 && edit_start_step < edit_steps, "edit_start_step",
          fmt::format("{} is not in 0..{} (below edit_steps)", edit_start_step, edit_steps - 1));
  require(std::isfinite(choice_temperature) && choice_temperature >= 0 && choice_temperature <= kMaxChoiceTemperature,
          "choice_temperature", fmt::format("{} is not in 0..{:g}", choice_temperature, kMaxChoiceTemperature));
  require(std::isfinite(temperature) && temperature >= kMinTemperature && temperature <= kMaxTemperature, "temperature",
          fmt::format("{} is not in {:g}..{:g}", temperature, kMinTemperature, kMaxTemperature));
  require(std::isfinite(guidance_scale) && std::abs(guidance_scale) <= kMaxGuidanceScale, "guidance_scale",
          fmt::format("{} is not in -{:g}..{:g}", guidance_scale, kMaxGuidanceScale, kMaxGuidanceScale));
  require(std::isfinite(edit_guidance_scale) && std::abs(edit_guidance_scale) <= kMaxGuidanceScale,
          "edit_guidance_scale",
          fmt::format("{} is not in -{:g}..{:g}", edit_guidance_scale, kMaxGuidanceScale, kMaxGuidanceScale));
  for (const auto& [field, value] : {std::pair<const char*, const std::string*>{"guidance_schedule", &guidance_schedule},
                                     {"edit_guidance_schedule", &edit_guidance_schedule}}) {
    try {
      parse_guidance_schedule(*value);
    } catch (const std::exception& e) {
      require(false, field, e.what());
    }
  }
  MaskSchedule parsed;
  try {
    parsed = parse_schedule(schedule);
  } catch (const std::exception& e) {
    require(false, "schedule", e.what());
  }
  require(parsed.custom_reveals.size() <= kMaxCustomSteps, "schedule",
          fmt::format("a custom schedule has at most {} steps", kMaxCustomSteps));
}

void to_json(Json& json, const SamplingDefaults& defaults) {
  json = Json{{"steps", defaults.steps},
              {"schedule", defaults.schedule},
              {"choice_temperature", defaults.choice_temperature},
              {"edit_steps", defaults.edit_steps},
              {"edit_start_step", defaults.edit_start_step}};
  // The optional fields only when they say something (1 is their meaning when absent), so that
  // builds from before they existed still read the file.
  if (defaults.temperature != 1.0) json["temperature"] = defaults.temperature;
  if (defaults.guidance_scale != 1.0) json["guidance_scale"] = defaults.guidance_scale;
  if (defaults.edit_guidance_scale != 1.0) json["edit_guidance_scale"] = defaults.edit_guidance_scale;
  if (defaults.guidance_schedule != "constant") json["guidance_schedule"] = defaults.guidance_schedule;
  if (defaults.edit_guidance_schedule != "constant") json["edit_guidance_schedule"] = defaults.edit_guidance_schedule;
}

void from_json(const Json& json, SamplingDefaults& defaults) { defaults = SamplingDefaults::from_json(json); }

Json SamplingDefaults::to_json() const { return *this; }

SamplingDefaults SamplingDefaults::from_json(const Json& json, const std::string& path) {
  if (!json.is_object()) throw std::runtime_error(path + ": expected an object");
  static const char* const kFields[] = {"steps",          "schedule",            "choice_temperature",
                                        "edit_steps",     "edit_start_step",     "temperature",
                                        "guidance_scale", "edit_guidance_scale", "guidance_schedule",
                                        "edit_guidance_schedule"};
  for (const auto& entry : json.items()) {
    const std::string& key = entry.key();  // (a structured binding cannot be captured in C++17)
    if (std::find_if(std::begin(kFields), std::end(kFields), [&](const char* field) { return key == field; }) ==
        std::end(kFields))
      throw std::runtime_error(fmt::format("{}.{}: unknown field (known: {})", path, key.substr(0, 64),
                                           fmt::join(kFields, ", ")));
  }
  SamplingDefaults defaults;
  defaults.steps = json_int(json, "steps", path);
  defaults.schedule = json_string(json, "schedule", path);
  defaults.choice_temperature = json_double(json, "choice_temperature", path);
  defaults.edit_steps = json_int(json, "edit_steps", path);
  defaults.edit_start_step = json_int(json, "edit_start_step", path);
  // Optional (sections written before these existed lack them).
  if (json_find(json, "temperature")) defaults.temperature = json_double(json, "temperature", path);
  if (json_find(json, "guidance_scale")) defaults.guidance_scale = json_double(json, "guidance_scale", path);
  if (json_find(json, "edit_guidance_scale"))
    defaults.edit_guidance_scale = json_double(json, "edit_guidance_scale", path);
  if (json_find(json, "guidance_schedule")) defaults.guidance_schedule = json_string(json, "guidance_schedule", path);
  if (json_find(json, "edit_guidance_schedule"))
    defaults.edit_guidance_schedule = json_string(json, "edit_guidance_schedule", path);
  defaults.validate(path);
  return defaults;
}

SamplingDefaults release_sampling_defaults(int64_t image_size) {
  SamplingDefaults defaults;
  defaults.steps = image_size > 256 ? 12 : 8;
  defaults.schedule = "cosine";
  defaults.choice_temperature = 4.5;
  defaults.edit_steps = 12;
  defaults.edit_start_step = 2;
  return defaults;
}

std::string directory_format(const std::string& directory) {
  const std::string path = (fs::path(directory) / kModelConfigFile).string();
  try {
    std::error_code error;
    if (!fs::is_regular_file(path, error)) return "";
    const Json root = parse_json(read_file_bytes(path, kMaxConfigBytes));
    const Json* format = root.is_object() ? json_find(root, "format") : nullptr;
    return format != nullptr && format->is_string() ? format->get<std::string>() : "";
  } catch (const std::exception&) {
    return "";
  }
}

std::string describe_directory_format(const std::string& format) {
  if (format == "maskgit-cpp") return "a MaskGIT model";
  if (format == "maskgit-cpp-classifier") return "a classifier";
  return "something else";
}

ModelConfig read_model_config(const std::string& directory) {
  ModelConfig config;
  config.directory = directory;
  std::error_code error;
  if (!fs::is_directory(directory, error))
    throw_bad_input(fmt::format("{}: model directory not found{}", directory, error ? ": " + error.message() : ""));
  const std::string path = config.path_of(kModelConfigFile);
  if (!fs::exists(path, error))
    throw_bad_input(fmt::format("{}: {}", path, error ? error.message() : "missing (not a model directory?)"));
  try {
    config.raw = parse_json(read_file_bytes(path, kMaxConfigBytes));
  } catch (const JsonParseError& e) {
    throw_bad_input(fmt::format("{}: invalid JSON: {}", path, e.what()));
  }
  try {
    const Json& root = config.raw;
    if (!root.is_object()) throw std::runtime_error("top level: expected an object");
    const std::string format = json_string(root, "format", "");
    if (format != "maskgit-cpp") throw std::runtime_error(fmt::format("format: expected \"maskgit-cpp\", got \"{}\"", format));
    const int64_t version = json_int(root, "format_version", "");
    if (version != kModelFormatVersion)
      throw std::runtime_error(fmt::format("format_version: {} is not supported (this build reads {})",
                                           version, kModelFormatVersion));
    const Json& image = json_member(root, "image", "");
    config.image_width = json_int(image, "width", "image");
    config.image_height = json_int(image, "height", "image");
    config.image_channels = json_int(image, "channels", "image");
    if (config.image_width < 1 || config.image_height < 1 || config.image_width > 4096 ||
        config.image_height > 4096)
      throw std::runtime_error("image: width and height must be in 1..4096");
    if (config.image_channels != 1 && config.image_channels != 3)
      throw std::runtime_error("image.channels: must be 1 or 3");
    const Json* names = json_find(root, "class_names");
    if (!names || !names->is_array() || names->size() == 0)
      throw std::runtime_error("class_names: expected a non-empty list of strings");
    for (const Json& name : *names) {
      if (!name.is_string() || name.get_ref<const std::string&>().empty())
        throw std::runtime_error("class_names: every entry must be a non-empty string");
      config.class_names.push_back(name.get<std::string>());
    }
    if (const Json* tokenizer = json_find(root, "tokenizer")) {
      config.tokenizer = TokenizerConfig::from_json(*tokenizer, "tokenizer");
      if (config.tokenizer->channels != config.image_channels)
        throw std::runtime_error("tokenizer.channels: differs from image.channels");
    }
    if (config.tokenizer) {
      const int64_t factor = config.tokenizer->downsample_factor();
      if (config.image_width % factor != 0 || config.image_height % factor != 0)
        throw std::runtime_error(fmt::format("image: {}x{} is not a multiple of the tokenizer's {} pixels per token",
                                             config.image_width, config.image_height, factor));
      const int64_t widest = tokenizer_activation_bound(*config.tokenizer, config.image_width, config.image_height);
      if (widest > kMaxActivation)
        throw std::runtime_error(fmt::format("tokenizer.filters: one {}x{} image needs activations of up to {} values, "
                                             "more than the {} allowed", config.image_width, config.image_height,
                                             widest, kMaxActivation));
    }
    if (const Json* transformer = json_find(root, "transformer")) {
      config.transformer = TransformerConfig::from_json(*transformer, "transformer");
      if (const std::string why = transformer_mismatch(*config.transformer, config); !why.empty())
        throw std::runtime_error(why);
    }
    if (const Json* sampling = json_find(root, "sampling")) {
      config.sampling = SamplingDefaults::from_json(*sampling, "sampling");
      if (config.transformer && !config.transformer->no_class_token &&
          (config.sampling->guidance_scale != 1.0 || config.sampling->edit_guidance_scale != 1.0))
        throw std::runtime_error(
            "sampling.guidance_scale, edit_guidance_scale: guidance needs a transformer with a \"no class\" token");
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw_bad_input(fmt::format("{}: {}", path, e.what()));
  }
  return config;
}

std::string transformer_mismatch(const TransformerConfig& transformer, const ModelConfig& model) {
  if (transformer.num_classes != model.num_classes())
    return fmt::format("transformer.num_classes: {}, but there are {} class_names", transformer.num_classes,
                       model.num_classes());
  if (!model.tokenizer) return "";
  if (transformer.codebook_size != model.tokenizer->codebook_size)
    return fmt::format("transformer.codebook_size: {} codes, but the tokenizer's codebook has {}",
                       transformer.codebook_size, model.tokenizer->codebook_size);
  const int64_t factor = model.tokenizer->downsample_factor();
  if (transformer.grid_width != model.image_width / factor || transformer.grid_height != model.image_height / factor)
    return fmt::format("transformer.grid_height, grid_width: {}x{} tokens, but a {}x{} image is {}x{} tokens",
                       transformer.grid_width, transformer.grid_height, model.image_width, model.image_height,
                       model.image_width / factor, model.image_height / factor);
  return "";
}

int64_t tokenizer_activation_bound(const TokenizerConfig& tokenizer, int64_t width, int64_t height) {
  // Conservative: the widest layer at full resolution (the decoder carries a level's width up to
  // the next resolution before it narrows; with no ResBlocks, all the way up).
  int64_t widest_width = tokenizer.embedding_dim;
  for (int64_t multiplier : tokenizer.channel_multipliers)
    widest_width = std::max(widest_width, tokenizer.filters * multiplier);
  return widest_width * width * height;
}

void check_tokenizer_image_size(const ModelConfig& config, int64_t width, int64_t height, const std::string& source) {
  if (width < 1 || height < 1 || width > kMaxImageSide || height > kMaxImageSide)
    throw_bad_input(fmt::format("{}: a {}x{} image is out of range (1..{} a side)", source, width, height, kMaxImageSide));
  if (!config.tokenizer) return;
  const int64_t values = tokenizer_activation_bound(*config.tokenizer, width, height);
  if (values > kMaxActivation)
    throw_bad_input(fmt::format("{}: a {}x{} image needs tokenizer activations of up to {} values, more than the {} "
                                "allowed for one image ({} is the model's own size)", source, width, height, values,
                                kMaxActivation, fmt::format("{}x{}", config.image_width, config.image_height)));
}

void write_model_config(const ModelConfig& config) {
  Json root = config.raw.is_object() ? config.raw : Json::object();
  root["format"] = "maskgit-cpp";
  root["format_version"] = kModelFormatVersion;
  Json image = Json::object();
  image["width"] = config.image_width;
  image["height"] = config.image_height;
  image["channels"] = config.image_channels;
  root["image"] = image;
  Json names = Json::array();
  for (const auto& name : config.class_names) names.push_back(name);
  root["class_names"] = names;
  if (config.tokenizer) root["tokenizer"] = config.tokenizer->to_json();
  if (config.transformer) {
    root["transformer"] = config.transformer->to_json();
  } else {
    root.erase("transformer");
  }
  if (config.sampling) {
    root["sampling"] = config.sampling->to_json();
  } else {
    root.erase("sampling");
  }
  ensure_directory(config.directory);
  write_file_atomic(config.path_of(kModelConfigFile), dump_json(root, 2) + "\n");
}

namespace {

// Opens a stage's weights file and validates its header, before any model is built: the file's
// size against the configuration, then the header alone (the tensors' bytes are read later,
// straight into the model).
SafetensorsReader open_stage_weights(const ModelConfig& config, const char* file_name, int64_t parameter_count) {
  const std::string path = config.path_of(file_name);
  check_weights_file_size(path, parameter_count);
  try {
    return SafetensorsReader(path);
  } catch (const SafetensorsError& e) {
    throw_bad_input(e.what());
  }
}

// Reads the weights into `module` (built on the CPU: float32 tensors are read from the file
// straight into the parameters), then moves it to `device`, in eval mode.
void load_stage_weights(torch::nn::Module& module, const SafetensorsReader& reader, const torch::Device& device) {
  try {
    load_module_state(module, reader);
  } catch (const SafetensorsError& e) {
    throw_bad_input(e.what());
  }
  module.to(device);
  module.eval();
}

// Streams the module's tensors into the file (write_safetensors with module_state_sources): the
// file is never gathered in memory.
void save_stage_weights(const torch::nn::Module& module, const ModelConfig& config, const char* file_name,
                        const char* stage) {
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"stage", stage}};
  ensure_directory(config.directory);
  write_safetensors(config.path_of(file_name), module_state_sources(module), metadata);
}

[[noreturn]] void throw_missing_stage(const ModelConfig& config, const char* stage) {
  throw_bad_input(fmt::format("{}: the model has no \"{}\" section", config.path_of(kModelConfigFile), stage));
}

}  // namespace

VQTokenizer load_tokenizer(const ModelConfig& config, const torch::Device& device) {
  if (!config.tokenizer) throw_missing_stage(config, "tokenizer");
  const SafetensorsReader reader =
      open_stage_weights(config, kTokenizerWeightsFile, config.tokenizer->parameter_count());
  VQTokenizer tokenizer(*config.tokenizer);
  load_stage_weights(*tokenizer, reader, device);
  return tokenizer;
}

void save_tokenizer_weights(const ModelConfig& config, VQTokenizer& tokenizer) {
  save_stage_weights(*tokenizer, config, kTokenizerWeightsFile, "tokenizer");
}

BidirectionalTransformer load_transformer(const ModelConfig& config, const torch::Device& device,
                                          torch::ScalarType dtype) {
  if (!config.transformer) throw_missing_stage(config, "transformer");
  const SafetensorsReader reader =
      open_stage_weights(config, kTransformerWeightsFile, config.transformer->parameter_count());
  BidirectionalTransformer transformer(*config.transformer);
  load_stage_weights(*transformer, reader, device);
  if (dtype != torch::kFloat32) transformer->to(dtype);
  return transformer;
}

void save_transformer_weights(const ModelConfig& config, BidirectionalTransformer& transformer) {
  save_stage_weights(*transformer, config, kTransformerWeightsFile, "transformer");
}

std::vector<int64_t> resolve_classes(const ModelConfig& config, const std::vector<std::string>& words) {
  auto lower = [](std::string text) {
    for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return text;
  };
  std::vector<int64_t> ids;
  for (const auto& word : words) {
    int64_t id = -1;
    if (!word.empty() && std::all_of(word.begin(), word.end(), [](unsigned char c) { return std::isdigit(c); })) {
      id = word.size() <= 9 ? std::stoll(word) : config.num_classes();
      if (id >= config.num_classes())
        throw InvalidArgument("class", fmt::format("class {} is out of range (the model has classes 0..{})", word,
                                                   config.num_classes() - 1));
    } else {
      // ImageNet's names repeat ("crane" is a bird and a machine): a name must be unique.
      std::vector<int64_t> matches;
      for (int64_t c = 0; c < config.num_classes(); ++c)
        if (lower(config.class_names[static_cast<size_t>(c)]) == lower(word)) matches.push_back(c);
      if (matches.size() > 1)
        throw InvalidArgument("class", fmt::format("\"{}\" names several classes ({}): give the class id", word,
                                                   fmt::join(matches, ", ")));
      if (matches.empty()) {
        constexpr size_t kListed = 12;
        std::vector<std::string> listed;
        size_t similar = 0;
        if (config.class_names.size() <= kListed) {
          listed = config.class_names;
        } else {  // many classes: the names containing the word, with their ids
          for (int64_t c = 0; c < config.num_classes(); ++c)
            if (lower(config.class_names[static_cast<size_t>(c)]).find(lower(word)) != std::string::npos &&
                ++similar <= kListed)
              listed.push_back(fmt::format("{} {}", c, config.class_names[static_cast<size_t>(c)]));
          if (similar > kListed) listed.push_back(fmt::format("and {} more", similar - kListed));
        }
        throw InvalidArgument(
            "class", fmt::format("unknown class \"{}\" ({}{})", word,
                                 listed.empty() ? "" : (config.class_names.size() <= kListed ? "classes: " : "similar: "),
                                 listed.empty() ? fmt::format("the model has {} classes, listed in {}",
                                                              config.num_classes(), config.path_of(kModelConfigFile))
                                                : fmt::format("{}", fmt::join(listed, ", "))));
      }
      id = matches.front();
    }
    ids.push_back(id);
  }
  return ids;
}

std::string default_model_dir() {
  if (const char* from_env = std::getenv("MASKGIT_MODEL"); from_env && *from_env) return from_env;
  if (fs::is_directory(MASKGIT_DEFAULT_MODEL_DIR)) return MASKGIT_DEFAULT_MODEL_DIR;
  // An installed binary: <prefix>/bin/tool → <prefix>/share/maskgit-cpp/models/fashion-mnist.
  std::error_code error;
  const fs::path executable = fs::read_symlink("/proc/self/exe", error);
  if (!error) {
    const fs::path installed =
        executable.parent_path().parent_path() / "share/maskgit-cpp/models/fashion-mnist";
    if (fs::is_directory(installed)) return installed.string();
  }
  return MASKGIT_DEFAULT_MODEL_DIR;
}

}  // namespace maskgit
