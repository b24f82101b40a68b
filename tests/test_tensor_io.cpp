// Weights between modules and safetensors files: loading each tensor once from its offset
// (straight into the parameter, or through one temporary for another dtype or layout), the
// checks made before any data is read, and saving that streams the module's own storage.
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "io/tensor_io.h"
#include "model/model_dir.h"
#include "transformer/transformer.h"

#include "test_support.h"
#include "tiny_models.h"

// Catch2 comes last: LibTorch pulls in glog, whose CHECK macro would replace Catch's.
#include <catch2/catch.hpp>

using namespace maskgit;
namespace fs = std::filesystem;

namespace {

// Two parameters and a buffer; `w` is stored transposed (not contiguous), so its bytes can never
// go straight from the file into its storage.
struct SmallModule : torch::nn::Module {
  SmallModule() {
    weight = register_parameter("weight", torch::zeros({2, 3}));
    transposed = register_parameter("w", torch::zeros({3, 2}).t());
    counts = register_buffer("counts", torch::zeros({4}, torch::kLong));
  }
  torch::Tensor weight, transposed, counts;
};

SafetensorsEntry entry_of(const std::string& name, DType dtype, std::vector<int64_t> shape, std::string data) {
  SafetensorsEntry entry;
  entry.name = name;
  entry.dtype = dtype;
  entry.shape = std::move(shape);
  entry.data = std::move(data);
  return entry;
}

template <typename T>
std::string raw(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

// A file for SmallModule in the given dtypes, values 0.5, 1.5, ...
SafetensorsFile small_file(const torch::ScalarType weight_type = torch::kFloat32) {
  SafetensorsFile file;
  file.tensors.push_back(tensor_to_entry("weight", (torch::arange(6).reshape({2, 3}) + 0.5).to(weight_type)));
  file.tensors.push_back(tensor_to_entry("w", torch::arange(6).reshape({2, 3}).to(torch::kFloat32) - 3));
  file.tensors.push_back(tensor_to_entry("counts", torch::tensor({1, 2, 3, 4}, torch::kLong)));
  return file;
}

// The message of the Error(bad_input) that loading `file` into a SmallModule throws, from the file
// on disk (through SafetensorsReader) and from memory: both must say the same after the source.
std::string refusal(const SafetensorsFile& file, const std::string& path) {
  write_safetensors(path, file);
  std::string from_file, from_memory;
  try {
    SmallModule module;
    load_module_state(module, SafetensorsReader(path));
  } catch (const maskgit::Error& e) {
    CHECK(e.code() == ExitCode::bad_input);
    from_file = e.what();
  }
  try {
    SmallModule module;
    load_module_state(module, file, path);
  } catch (const maskgit::Error& e) {
    from_memory = e.what();
  }
  CHECK(from_file == from_memory);
  CHECK_THAT(from_file, Catch::StartsWith(path + ": "));
  return from_file;
}

}  // namespace

TEST_CASE("weights load from a file's offsets, straight or through one temporary", "[tensor_io]") {
  const fs::path dir = testing::fresh_temp_dir("test-tensor-io");
  const std::string path = (dir / "small.safetensors").string();

  for (const torch::ScalarType type : {torch::kFloat32, torch::kFloat64, torch::kFloat16, torch::kBFloat16}) {
    INFO(c10::toString(type));
    write_safetensors(path, small_file(type));
    SmallModule module;
    load_module_state(module, SafetensorsReader(path));
    CHECK(torch::equal(module.weight, torch::arange(6).reshape({2, 3}).to(torch::kFloat32) + 0.5));
    CHECK(module.weight.scalar_type() == torch::kFloat32);
    CHECK(torch::equal(module.transposed, torch::arange(6).reshape({2, 3}).to(torch::kFloat32) - 3));
    CHECK_FALSE(module.transposed.is_contiguous());  // loaded in place, still the same tensor
    CHECK(torch::equal(module.counts, torch::tensor({1, 2, 3, 4}, torch::kLong)));
  }

  // Under a prefix, other entries are ignored (a training checkpoint's optimizer state).
  SafetensorsFile checkpoint;
  for (SafetensorsEntry entry : small_file().tensors) {
    entry.name = "model." + entry.name;
    checkpoint.tensors.push_back(entry);
  }
  checkpoint.tensors.push_back(entry_of("adam.step", DType::I64, {}, raw(std::vector<int64_t>{7})));
  write_safetensors(path, checkpoint);
  SmallModule module;
  load_module_state(module, SafetensorsReader(path), "model.");
  CHECK(module.counts[3].item<int64_t>() == 4);
  fs::remove_all(dir);
}

TEST_CASE("weights: every name, shape and dtype is checked before any data is read", "[tensor_io]") {
  const fs::path dir = testing::fresh_temp_dir("test-tensor-io-checks");
  const std::string path = (dir / "bad.safetensors").string();

  SafetensorsFile extra = small_file();
  extra.tensors.push_back(entry_of("bias", DType::F32, {1}, raw(std::vector<float>{0})));
  CHECK_THAT(refusal(extra, path), Catch::Contains("unexpected tensor \"bias\""));

  SafetensorsFile missing = small_file();
  missing.tensors.erase(missing.tensors.begin() + 2);
  CHECK_THAT(refusal(missing, path), Catch::EndsWith("missing tensor \"counts\""));

  SafetensorsFile integer = small_file();
  integer.tensors[0] = tensor_to_entry("weight", torch::zeros({2, 3}, torch::kInt32));
  CHECK_THAT(refusal(integer, path), Catch::Contains("tensor \"weight\" has dtype I32, expected Float"));

  // A NaN in the first tensor and a wrong shape in the last: the shape is reported, from the
  // header, before any data is read.
  SafetensorsFile both = small_file();
  const float nan = std::nanf("");
  std::memcpy(both.tensors[0].data.data(), &nan, sizeof nan);
  both.tensors[1] = tensor_to_entry("w", torch::zeros({3, 3}));
  CHECK_THAT(refusal(both, path), Catch::Contains("tensor \"w\" has shape [3, 3], the model configuration expects [2, 3]"));

  // Non-finite values in every floating dtype, by their bits, naming the tensor.
  const auto poisoned = [&](DType dtype, std::string data) {
    SafetensorsFile file = small_file();
    file.tensors[0] = entry_of("weight", dtype, {2, 3}, std::move(data));
    return refusal(file, path);
  };
  const std::string message = "tensor \"weight\" holds non-finite values (NaN or infinity)";
  CHECK_THAT(poisoned(DType::F32, raw(std::vector<float>{0, 1, 2, 3, 4, -INFINITY})), Catch::Contains(message));
  CHECK_THAT(poisoned(DType::F64, raw(std::vector<double>{0, 1, std::nan(""), 3, 4, 5})), Catch::Contains(message));
  CHECK_THAT(poisoned(DType::F16, raw(std::vector<uint16_t>{0, 0x3c00, 0x7c00, 0, 0, 0})), Catch::Contains(message));
  CHECK_THAT(poisoned(DType::BF16, raw(std::vector<uint16_t>{0x7fc1, 0, 0, 0, 0, 0})), Catch::Contains(message));
  // The largest finite values are finite.
  SafetensorsFile largest = small_file();
  largest.tensors[0] = entry_of("weight", DType::F16, {2, 3}, raw(std::vector<uint16_t>{0x7bff, 0xfbff, 0, 0, 0, 0}));
  write_safetensors(path, largest);
  SmallModule module;
  load_module_state(module, SafetensorsReader(path));
  CHECK(module.weight[0][0].item<float>() == 65504.0f);
  fs::remove_all(dir);
}

TEST_CASE("weights save by streaming the module's own storage: the same file as before", "[tensor_io]") {
  const fs::path dir = testing::fresh_temp_dir("test-tensor-io-save");
  torch::manual_seed(3);
  ModelConfig config;
  config.directory = dir.string();
  config.class_names = {"a", "b", "c"};
  config.transformer = testing::tiny_transformer_config();
  BidirectionalTransformer transformer(*config.transformer);
  save_transformer_weights(config, transformer);
  const std::string path = config.path_of(kTransformerWeightsFile);

  SafetensorsFile expected;
  append_module_state(expected, *transformer);
  expected.metadata = {{"format", "pt"}, {"stage", "transformer"}};
  CHECK(read_file_bytes(path) == serialize_safetensors(expected));
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);  // no temporary left

  // A non-contiguous tensor is written as its values in row-major order.
  SmallModule small;
  small.transposed.detach().copy_(torch::arange(6).reshape({2, 3}).to(torch::kFloat32));
  write_safetensors((dir / "small.safetensors").string(), module_state_sources(small, "m."), {});
  const SafetensorsFile back = read_safetensors((dir / "small.safetensors").string());
  CHECK(torch::equal(entry_to_tensor(*back.find("m.w")), torch::arange(6).reshape({2, 3}).to(torch::kFloat32)));
  CHECK(back.find("m.counts")->dtype == DType::I64);

  // Loaded back through the model directory: equal parameters.
  write_model_config(config);
  const BidirectionalTransformer loaded = load_transformer(read_model_config(dir.string()), torch::kCPU);
  const auto original = module_state(*transformer), restored = module_state(*loaded);
  REQUIRE(original.size() == restored.size());
  for (const auto& [name, value] : original) {
    INFO(name);
    CHECK(torch::equal(value, restored.at(name)));
  }
  fs::remove_all(dir);
}

TEST_CASE("directory_format tells a model, a classifier and anything else apart without throwing", "[tensor_io][model]") {
  namespace fs = std::filesystem;
  const fs::path dir = maskgit::testing::fresh_temp_dir("directory-format");
  const auto with_config = [&](const std::string& name, const std::string& text) {
    fs::create_directories(dir / name);
    std::ofstream(dir / name / "config.json") << text;
    return (dir / name).string();
  };
  const std::pair<std::string, std::string> cases[] = {
      {with_config("model", R"({"format": "maskgit-cpp", "format_version": 1})"), "maskgit-cpp"},
      {with_config("classifier", R"({"format": "maskgit-cpp-classifier"})"), "maskgit-cpp-classifier"},
      {with_config("other", R"({"format": "something"})"), "something"},
      {with_config("number", R"({"format": 7})"), ""},
      {with_config("array", R"(["maskgit-cpp"])"), ""},
      {with_config("broken", R"({"format": "maskgit-cpp")"), ""},
      {with_config("empty", ""), ""},
      {(dir / "missing").string(), ""},
  };
  for (const auto& [path, format] : cases) {
    INFO(path);
    CHECK(maskgit::directory_format(path) == format);
  }
  fs::create_directories(dir / "dir-config" / "config.json");  // a folder where the file should be
  CHECK(maskgit::directory_format((dir / "dir-config").string()).empty());
  CHECK(maskgit::describe_directory_format("maskgit-cpp") == "a MaskGIT model");
  CHECK(maskgit::describe_directory_format("maskgit-cpp-classifier") == "a classifier");
  CHECK(maskgit::describe_directory_format("") == "something else");
  fs::remove_all(dir);
}
