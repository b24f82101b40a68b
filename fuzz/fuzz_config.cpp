// read_model_config (lib/model/model_dir.h): a model directory's config.json, with its
// tokenizer and transformer sections. The loader reads a directory, so each input is written
// to config.json in a scratch directory. Refusal: Error(bad_input) naming config.json. An
// accepted configuration validates, and write_model_config then read_model_config gives it
// back unchanged.
#include "fuzz_torch.h"
#include "model/model_dir.h"

using namespace maskgit;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::init_torch();
  return 0;
}

namespace {

ModelConfig read(const std::string& directory, const char* loader) {
  try {
    return read_model_config(directory);
  } catch (const Error&) {
    throw;
  } catch (...) {
    fuzz::unexpected_exception(loader);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string directory = fuzz::scratch_directory() + "/model";
  const std::string copy = fuzz::scratch_directory() + "/written";
  std::filesystem::create_directories(directory);
  const std::string path = directory + "/" + kModelConfigFile;
  fuzz::write_scratch_file(std::string("model/") + kModelConfigFile, data, size);

  ModelConfig config;
  try {
    config = read(directory, "read_model_config");
  } catch (const Error& e) {
    fuzz::check_bad_input(e, path, "read_model_config");
    return 0;
  }
  if (config.image_width < 1 || config.image_height < 1 || (config.image_channels != 1 && config.image_channels != 3) ||
      config.class_names.empty())
    fuzz::finding("read_model_config accepted an impossible image or class list");
  try {
    if (config.tokenizer) config.tokenizer->validate();
    if (config.transformer) config.transformer->validate();
    if (config.sampling) config.sampling->validate();
  } catch (...) {
    fuzz::unexpected_exception("validate() of an accepted configuration");
  }

  ModelConfig written = config;
  written.directory = copy;
  ModelConfig again;
  try {
    write_model_config(written);
    again = read(copy, "read_model_config of write_model_config");
  } catch (...) {
    fuzz::unexpected_exception("write_model_config then read_model_config of an accepted configuration");
  }
  if (again.image_width != config.image_width || again.image_height != config.image_height ||
      again.image_channels != config.image_channels || again.class_names != config.class_names ||
      again.tokenizer.has_value() != config.tokenizer.has_value() ||
      again.transformer.has_value() != config.transformer.has_value() ||
      (config.tokenizer && again.tokenizer->to_json() != config.tokenizer->to_json()) ||
      (config.transformer && again.transformer->to_json() != config.transformer->to_json()) ||
      again.sampling.has_value() != config.sampling.has_value() ||
      (config.sampling && again.sampling->to_json() != config.sampling->to_json()))
    fuzz::finding("write_model_config and read_model_config changed the configuration");
  return 0;
}
