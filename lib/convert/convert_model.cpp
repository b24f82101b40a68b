#include "convert/convert_model.h"

#include <fcntl.h>
#include <signal.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/error.h"
#include "convert/flax_msgpack.h"
#include "convert/release_checkpoint.h"
#include "io/atomic_file.h"
#include "io/json.h"

namespace maskgit {
namespace fs = std::filesystem;
namespace {

// The path without trailing slashes ("models/x/" → "models/x").
std::string strip_slashes(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

std::string parent_of(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

// Removes a directory tree unless released: the temporary model directory on any failure.
class TemporaryDirectory {
 public:
  explicit TemporaryDirectory(std::string path) : path_(std::move(path)) {}
  ~TemporaryDirectory() {
    if (path_.empty()) return;
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TemporaryDirectory(const TemporaryDirectory&) = delete;
  TemporaryDirectory& operator=(const TemporaryDirectory&) = delete;
  const std::string& path() const { return path_; }
  void release() { path_.clear(); }

 private:
  std::string path_;
};

// Hidden sibling names: the model being written, and (while it replaces one) the old model.
constexpr const char* kTemporaryTag = ".maskgit-convert.";
constexpr const char* kAsideTag = ".maskgit-convert.old.";

// Leftovers of conversions to the same destination that were killed (their process is gone):
// half-written models are removed; an old model moved aside and not yet removed is put back
// when the destination is missing (the kill came between the two renames), else removed.
void remove_stale_temporaries(const std::string& parent, const std::string& name, const std::string& output) {
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(parent, error)) {
    const std::string file = entry.path().filename().string();
    const std::string temporary_prefix = "." + name + kTemporaryTag, aside_prefix = "." + name + kAsideTag;
    const bool aside = file.rfind(aside_prefix, 0) == 0;
    if (!aside && file.rfind(temporary_prefix, 0) != 0) continue;
    const std::string digits = file.substr((aside ? aside_prefix : temporary_prefix).size());
    if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const auto pid = static_cast<pid_t>(std::stol(digits));
    if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to judge)
    std::error_code ignored;
    struct stat info {};
    if (aside && ::lstat(output.c_str(), &info) != 0 && ::rename(entry.path().c_str(), output.c_str()) == 0) continue;
    fs::remove_all(entry.path(), ignored);
  }
}

// Before a module is built from the inferred architecture: it may not have many more parameters
// than the arrays hold (a few missing arrays are named one by one by load_release_parameters;
// a small file whose shapes describe a huge model must not make the converter allocate it).
void check_parameter_total(const FlaxCheckpoint& checkpoint, int64_t expected) {
  int64_t total = 0;
  for (const auto& entry : checkpoint.arrays()) total += entry.second.numel;  // the sum is at most the file's size
  constexpr int64_t kSlack = int64_t{1} << 20;
  if (expected > 2 * total + kSlack)
    throw_bad_input(fmt::format("{}: the arrays hold {} values, but the architecture their shapes describe has {} "
                                "parameters (arrays missing or of other sizes)", checkpoint.source(), total, expected));
}

template <typename T>
void compare(std::vector<std::string>& out, const char* field, const T& ours, const T& official) {
  if (ours != official) out.push_back(fmt::format("{} {} (official {})", field, ours, official));
}

std::vector<std::string> differences_from_official(const ModelConfig& config) {
  std::vector<std::string> out;
  const TokenizerConfig t = *config.tokenizer, ot = TokenizerConfig::official_imagenet();
  compare(out, "tokenizer.channels", t.channels, ot.channels);
  compare(out, "tokenizer.filters", t.filters, ot.filters);
  if (t.channel_multipliers != ot.channel_multipliers)
    out.push_back(fmt::format("tokenizer.channel_multipliers [{}] (official [{}])", fmt::join(t.channel_multipliers, ","),
                              fmt::join(ot.channel_multipliers, ",")));
  compare(out, "tokenizer.num_res_blocks", t.num_res_blocks, ot.num_res_blocks);
  compare(out, "tokenizer.codebook_size", t.codebook_size, ot.codebook_size);
  compare(out, "tokenizer.embedding_dim", t.embedding_dim, ot.embedding_dim);
  const TransformerConfig m = *config.transformer, om = TransformerConfig::official_imagenet(m.grid_height);
  compare(out, "transformer.num_classes", m.num_classes, om.num_classes);
  compare(out, "transformer.hidden_size", m.hidden_size, om.hidden_size);
  compare(out, "transformer.num_layers", m.num_layers, om.num_layers);
  compare(out, "transformer.num_heads", m.num_heads, om.num_heads);
  compare(out, "transformer.mlp_dim", m.mlp_dim, om.mlp_dim);
  if (config.image_width != 256 && config.image_width != 512)
    out.push_back(fmt::format("image {}x{} (the release has 256x256 and 512x512)", config.image_width,
                              config.image_height));
  return out;
}

}  // namespace

void check_output_directory(const std::string& raw_path, bool overwrite, const std::string& flag) {
  const std::string path = strip_slashes(raw_path);
  auto refuse = [&](const std::string& problem) { throw_io_error(fmt::format("{} {}: {}", flag, raw_path, problem)); };
  if (path.empty()) refuse("empty path");
  const std::string name = fs::path(path).filename().string();
  if (path == "/" || name == "." || name == "..") refuse("not a directory name");
  // The hidden siblings are named ".<name>.maskgit-convert.old.<pid>".
  if (name.size() + 40 > 255) refuse("the name is too long (at most 215 bytes)");
  struct stat info {};
  if (::lstat(path.c_str(), &info) == 0) {
    if (S_ISLNK(info.st_mode)) refuse("is a symbolic link (name the directory itself)");
    if (!S_ISDIR(info.st_mode)) refuse("exists and is not a directory");
    std::error_code error;
    const bool empty = fs::is_empty(path, error);
    if (error) refuse(error.message());
    if (!empty) {
      if (!overwrite) refuse("exists and is not empty (--overwrite replaces a model directory)");
      struct stat config_info {};
      if (::lstat((fs::path(path) / kModelConfigFile).c_str(), &config_info) != 0 || !S_ISREG(config_info.st_mode))
        refuse("is not a model directory (no config.json): not replaced");
      bool ours = false;
      try {
        const Json existing = parse_json(read_file_bytes((fs::path(path) / kModelConfigFile).string(), kMaxConfigBytes));
        const Json* format = json_find(existing, "format");
        ours = format && format->is_string() && format->get_ref<const std::string&>() == "maskgit-cpp";
      } catch (const std::exception&) {
      }
      if (!ours) refuse("its config.json is not a maskgit-cpp model's: not replaced");
      // Only a converted model is replaced whole: a folder holding anything else (a trained
      // model's train-state/, a classifier, notes) is not ours to delete.
      for (const auto& entry : fs::directory_iterator(path, error)) {
        const std::string file = entry.path().filename().string();
        if (file != kModelConfigFile && file != kTokenizerWeightsFile && file != kTransformerWeightsFile)
          refuse(fmt::format("holds {} besides a model's files: not replaced (--overwrite replaces only config.json, "
                             "{} and {})", file, kTokenizerWeightsFile, kTransformerWeightsFile));
      }
      if (error) refuse(error.message());
    }
    if (::access(parent_of(path).c_str(), W_OK | X_OK) != 0)
      refuse(fmt::format("cannot replace it: its folder is not writable ({})", std::strerror(errno)));
    return;
  }
  if (errno != ENOENT) refuse(std::strerror(errno));
  // An existing folder: a probe directory of the temporary's own name must be creatable there.
  const std::string parent = parent_of(path);
  if (::stat(parent.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) {
    const std::string probe = (fs::path(parent) / fmt::format(".{}{}{}", name, kTemporaryTag, ::getpid())).string();
    if (::mkdir(probe.c_str(), 0700) != 0 && errno != EEXIST) refuse(fmt::format("cannot create it: {}", std::strerror(errno)));
    ::rmdir(probe.c_str());
    return;
  }
  // The nearest existing ancestor must be a writable directory (the rest is made later).
  fs::path ancestor = fs::path(path).parent_path();
  while (!ancestor.empty() && ::lstat(ancestor.c_str(), &info) != 0) ancestor = ancestor.parent_path();
  const std::string existing = ancestor.empty() ? "." : ancestor.string();
  if (::stat(existing.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) refuse(fmt::format("{} is not a directory", existing));
  if (::access(existing.c_str(), W_OK | X_OK) != 0)
    refuse(fmt::format("cannot create it in {}: {}", existing, std::strerror(errno)));
}

std::vector<std::string> read_class_names(const std::string& path, int64_t count) {
  const std::string text = read_file_bytes(path, kMaxConfigBytes);
  std::vector<std::string> names;
  size_t start = 0;
  int64_t line = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string name = text.substr(start, end - start);
    ++line;
    if (line == 1 && name.rfind("\xef\xbb\xbf", 0) == 0) name.erase(0, 3);  // a UTF-8 byte order mark
    const size_t first = name.find_first_not_of(" \t\r"), last = name.find_last_not_of(" \t\r");
    name = first == std::string::npos ? std::string() : name.substr(first, last - first + 1);
    if (name.empty()) throw_bad_input(fmt::format("{}: line {}: empty class name", path, line));
    if (name.size() > kMaxClassNameBytes)
      throw_bad_input(fmt::format("{}: line {}: a class name of {} bytes (at most {})", path, line, name.size(),
                                  kMaxClassNameBytes));
    for (unsigned char c : name)
      if (c < 0x20 || c == 0x7f) throw_bad_input(fmt::format("{}: line {}: control character in a class name", path, line));
    if (!is_valid_utf8(name)) throw_bad_input(fmt::format("{}: line {}: not valid UTF-8", path, line));
    names.push_back(std::move(name));
    start = end + 1;
  }
  if (static_cast<int64_t>(names.size()) != count)
    throw_bad_input(fmt::format("{}: {} class names, the transformer has {} classes (its vocabulary minus the "
                                "tokenizer's codes and the mask token)", path, names.size(), count));
  return names;
}

ConvertReport convert_release_model(const ConvertRequest& request,
                                    const std::function<void(const std::string&)>& progress) {
  auto say = [&](const std::string& line) {
    if (progress) progress(line);
  };
  const std::string output = strip_slashes(request.output_dir);
  const std::string parent = parent_of(output);
  const std::string name = fs::path(output).filename().string();
  std::error_code ignored;
  if (fs::is_directory(parent, ignored)) remove_stale_temporaries(parent, name, output);
  check_output_directory(request.output_dir, request.overwrite, "--output");

  // (Memory-mapped: each array's pages are dropped once converted, see load_release_parameters.)
  const FlaxCheckpoint tokenizer_checkpoint = FlaxCheckpoint::read(request.tokenizer_path);
  const FlaxCheckpoint transformer_checkpoint = FlaxCheckpoint::read(request.transformer_path);
  ConvertReport report;
  ModelConfig& config = report.config;
  config.tokenizer = infer_tokenizer_config(tokenizer_checkpoint);
  config.transformer = infer_transformer_config(transformer_checkpoint, config.tokenizer->codebook_size);
  const int64_t factor = config.tokenizer->downsample_factor();
  config.image_channels = config.tokenizer->channels;
  if (config.image_channels != 1 && config.image_channels != 3)
    throw_bad_input(fmt::format("{}: encoder/Conv_0/kernel: {} input channels (1 or 3 are supported)",
                                request.tokenizer_path, config.image_channels));
  config.image_height = config.transformer->grid_height * factor;
  config.image_width = config.transformer->grid_width * factor;
  const int64_t classes = config.transformer->num_classes;
  if (request.class_names_path.empty()) {
    for (int64_t c = 0; c < classes; ++c) config.class_names.push_back(std::to_string(c));
  } else {
    config.class_names = read_class_names(request.class_names_path, classes);
  }
  Json source = Json::object();
  source["tokenizer"] = fs::path(request.tokenizer_path).filename().string();
  source["transformer"] = fs::path(request.transformer_path).filename().string();
  source["converter"] = std::string("maskgit-convert ") + MASKGIT_VERSION;
  config.raw = Json::object();
  config.raw["converted_from"] = source;
  // The release's decoding settings for this size (8 steps at 256, 12 at 512, τ0 4.5, cosine;
  // edits 12 steps from step 2), which the tools use unless a flag says otherwise.
  config.sampling = release_sampling_defaults(std::max(config.image_width, config.image_height));
  report.differences_from_official = differences_from_official(config);
  report.tokenizer_arrays = tokenizer_checkpoint.arrays().size();
  report.transformer_arrays = transformer_checkpoint.arrays().size();
  report.tokenizer_parameters = config.tokenizer->parameter_count();
  report.transformer_parameters = config.transformer->parameter_count();
  // The arrays must hold exactly the parameters the inferred architecture has before a module
  // of that size is built: a small file cannot make the converter allocate gigabytes.
  check_parameter_total(tokenizer_checkpoint, report.tokenizer_parameters);
  check_parameter_total(transformer_checkpoint, report.transformer_parameters);

  // Both stages are converted, so every array is checked, before anything is written.
  VQTokenizer tokenizer(*config.tokenizer);
  load_release_parameters(*tokenizer, tokenizer_checkpoint);
  say(fmt::format("tokenizer: {} arrays, {} parameters", report.tokenizer_arrays, report.tokenizer_parameters));
  BidirectionalTransformer transformer(*config.transformer);
  load_release_parameters(*transformer, transformer_checkpoint);
  say(fmt::format("transformer: {} arrays, {} parameters", report.transformer_arrays, report.transformer_parameters));

  // The model goes to a temporary sibling directory, renamed into place at the end.
  ensure_directory(parent);
  const std::string temporary_path = (fs::path(parent) / fmt::format(".{}{}{}", name, kTemporaryTag, ::getpid())).string();
  fs::remove_all(temporary_path, ignored);
  if (::mkdir(temporary_path.c_str(), 0755) != 0)
    throw_io_error(fmt::format("--output {}: cannot create {}: {}", request.output_dir, temporary_path, std::strerror(errno)));
  TemporaryDirectory temporary(temporary_path);
  config.directory = temporary_path;
  save_tokenizer_weights(config, tokenizer);
  save_transformer_weights(config, transformer);
  write_model_config(config);
  read_model_config(temporary_path);  // what we wrote must read back

  // Into place: over nothing or an empty directory directly; over a model directory by moving
  // it aside first and removing it once the new one is in place.
  // Without --overwrite a plain rename, which never replaces a non-empty directory (one that
  // appeared since the check, or a concurrent conversion's, makes this one fail instead).
  struct stat info {};
  const bool replacing = request.overwrite && ::lstat(output.c_str(), &info) == 0 && S_ISDIR(info.st_mode) &&
                         !fs::is_empty(output, ignored);
  if (replacing) {
    check_output_directory(request.output_dir, true, "--output");  // still a model directory, and only that
    const std::string aside = (fs::path(parent) / fmt::format(".{}{}{}", name, kAsideTag, ::getpid())).string();
    fs::remove_all(aside, ignored);
    if (::rename(output.c_str(), aside.c_str()) != 0)
      throw_io_error(fmt::format("--output {}: cannot move the old model aside: {}", request.output_dir, std::strerror(errno)));
    if (::rename(temporary_path.c_str(), output.c_str()) != 0) {
      const int error = errno;
      ::rename(aside.c_str(), output.c_str());
      throw_io_error(fmt::format("--output {}: {}", request.output_dir, std::strerror(error)));
    }
    fs::remove_all(aside, ignored);
  } else if (::rename(temporary_path.c_str(), output.c_str()) != 0) {
    const int error = errno;
    throw_io_error(fmt::format("--output {}: {}", request.output_dir,
                               error == ENOTEMPTY || error == EEXIST ? "appeared during the conversion and is not empty "
                                                                      "(--overwrite replaces a model directory)"
                                                                    : std::strerror(error)));
  }
  temporary.release();
  sync_parent_directory(output);
  config.directory = output;
  return report;
}

}  // namespace maskgit
