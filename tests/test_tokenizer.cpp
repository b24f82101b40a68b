#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>
#include <unistd.h>

#include "common/error.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "io/tensor_io.h"
#include "model/model_dir.h"
#include "tokenizer/config.h"
#include "tokenizer/token_file.h"
#include "tokenizer/vqgan.h"

#include "test_support.h"
#include "tiny_models.h"

// Catch2 comes last: LibTorch pulls in glog, whose CHECK macro would replace Catch's.
#include <catch2/catch.hpp>

using namespace maskgit;
using maskgit::testing::tiny_tokenizer_config;
namespace fs = std::filesystem;

TEST_CASE("tokenizer grid shapes follow the number of levels", "[tokenizer]") {
  torch::manual_seed(0);
  struct Case {
    std::vector<int64_t> multipliers;
    int64_t channels, size, grid;
  };
  for (const Case& c : {Case{{1}, 1, 28, 28}, Case{{1, 2}, 1, 28, 14}, Case{{1, 2, 4}, 1, 28, 7},
                        Case{{1, 2, 2, 4}, 3, 32, 4}}) {
    TokenizerConfig config = tiny_tokenizer_config();
    // Range-constructed, not copy-assigned: g++ 13 reports a false -Warray-bounds in the inlined copy.
    config.channel_multipliers = std::vector<int64_t>(c.multipliers.begin(), c.multipliers.end());
    config.channels = c.channels;
    VQTokenizer tokenizer(config);
    tokenizer->eval();
    torch::Tensor images = torch::rand({2, c.channels, c.size, c.size});
    torch::Tensor ids = tokenizer->encode(images);
    CHECK(ids.sizes() == torch::IntArrayRef({2, c.grid, c.grid}));
    CHECK(ids.scalar_type() == torch::kLong);
    CHECK(ids.min().item<int64_t>() >= 0);
    CHECK(ids.max().item<int64_t>() < config.codebook_size);
    torch::Tensor decoded = tokenizer->decode(ids);
    CHECK(decoded.sizes() == torch::IntArrayRef({2, c.channels, c.grid * config.downsample_factor(),
                                                 c.grid * config.downsample_factor()}));
  }
}

TEST_CASE("images of any size are padded to whole tokens and cropped back", "[tokenizer]") {
  torch::manual_seed(1);
  VQTokenizer tokenizer(tiny_tokenizer_config());  // f = 2
  tokenizer->eval();
  torch::Tensor images = torch::rand({1, 1, 9, 13});
  torch::Tensor ids = tokenizer->encode(images);
  CHECK(ids.sizes() == torch::IntArrayRef({1, 5, 7}));
  CHECK(tokenizer->decode(ids, 9, 13).sizes() == torch::IntArrayRef({1, 1, 9, 13}));
}

TEST_CASE("the quantizer returns the true nearest code", "[tokenizer]") {
  torch::manual_seed(2);
  TokenizerConfig config = tiny_tokenizer_config();
  config.codebook_size = 37;
  config.embedding_dim = 5;
  VectorQuantizer quantizer(config);
  {
    torch::NoGradGuard no_grad;
    quantizer->codebook.normal_();
  }
  torch::Tensor latents = torch::randn({3, 5, 4, 6});
  torch::Tensor ids = quantizer->nearest_ids(latents);
  for (int64_t n = 0; n < 3; ++n)
    for (int64_t y = 0; y < 4; ++y)
      for (int64_t x = 0; x < 6; ++x) {
        torch::Tensor vector = latents.index({n, torch::indexing::Slice(), y, x});
        int64_t best = -1;
        double best_distance = 1e300;
        for (int64_t k = 0; k < 37; ++k) {
          const double distance = (quantizer->codebook[k] - vector).pow(2).sum().item<double>();
          if (distance < best_distance) best_distance = distance, best = k;
        }
        REQUIRE(ids[n][y][x].item<int64_t>() == best);
      }
  // The straight-through output carries the chosen codes forward.
  Quantized q = quantizer->forward(latents);
  CHECK(torch::allclose(q.latents, quantizer->lookup(ids), 1e-5, 1e-5));
  CHECK(q.commitment_loss.item<double>() > 0);
}

TEST_CASE("the release shortcut quirk changes the 1x1 conv's input", "[tokenizer]") {
  TokenizerConfig config = tiny_tokenizer_config();
  auto shortcut_shape = [&](bool quirk) {
    config.release_shortcut = quirk;
    VQTokenizer tokenizer(config);
    // encoder.ResBlock_1 maps 8 → 16 channels.
    return module_state(*tokenizer).at("encoder.ResBlock_1.Conv_2.weight").sizes().vec();
  };
  CHECK((shortcut_shape(true) == std::vector<int64_t>{16, 16, 1, 1}));
  CHECK((shortcut_shape(false) == std::vector<int64_t>{16, 8, 1, 1}));

  // With the quirk, zeroing the block's second conv zeroes its output whatever the input:
  // nothing of x passes through.
  config.release_shortcut = true;
  ResBlock block(8, 16, config);
  {
    torch::NoGradGuard no_grad;
    module_state(*block).at("Conv_1.weight").zero_();
  }
  CHECK(block->forward(torch::randn({1, 8, 4, 4})).abs().max().item<double>() == 0.0);
}

TEST_CASE("the official ImageNet configuration has the release's parameter layout", "[tokenizer]") {
  const TokenizerConfig config = TokenizerConfig::official_imagenet();
  CHECK(config.downsample_factor() == 16);
  VQTokenizer tokenizer(config);
  const auto state = module_state(*tokenizer);
  auto shape = [&](const std::string& key) {
    INFO(key);
    REQUIRE(state.count(key) == 1);
    return state.at(key).sizes().vec();
  };
  CHECK((shape("encoder.Conv_0.weight") == std::vector<int64_t>{128, 3, 3, 3}));
  CHECK((shape("encoder.ResBlock_4.Conv_2.weight") == std::vector<int64_t>{256, 256, 1, 1}));
  CHECK((shape("encoder.ResBlock_11.Conv_1.weight") == std::vector<int64_t>{512, 512, 3, 3}));
  CHECK((shape("encoder.GroupNorm_0.weight") == std::vector<int64_t>{512}));
  CHECK((shape("encoder.Conv_1.weight") == std::vector<int64_t>{256, 512, 1, 1}));
  CHECK((shape("decoder.Conv_0.weight") == std::vector<int64_t>{512, 256, 3, 3}));
  CHECK((shape("decoder.ResBlock_4.Conv_2.weight") == std::vector<int64_t>{256, 256, 1, 1}));
  CHECK((shape("decoder.Conv_4.weight") == std::vector<int64_t>{128, 128, 3, 3}));
  CHECK((shape("decoder.Conv_5.weight") == std::vector<int64_t>{3, 128, 3, 3}));
  CHECK((shape("quantizer.codebook") == std::vector<int64_t>{1024, 256}));
  CHECK(state.count("encoder.ResBlock_12.Conv_0.weight") == 0);
  CHECK(state.count("decoder.Conv_6.weight") == 0);
  // Expressible in (and recoverable from) config.json.
  const TokenizerConfig parsed = TokenizerConfig::from_json(parse_json(dump_json(config.to_json())));
  CHECK(dump_json(parsed.to_json()) == dump_json(config.to_json()));
}

TEST_CASE("parameter_count() is what the tokenizer allocates", "[tokenizer]") {
  auto allocated = [](const TokenizerConfig& config) {
    int64_t count = 0;
    for (const auto& item : module_state(*VQTokenizer(config))) count += item.second.numel();
    return count;
  };
  for (bool release_shortcut : {false, true}) {
    TokenizerConfig config = TokenizerConfig::official_imagenet();
    config.release_shortcut = release_shortcut;
    CHECK(config.parameter_count() == allocated(config));
    TokenizerConfig small = tiny_tokenizer_config();
    small.release_shortcut = release_shortcut;
    small.channel_multipliers = {2, 1, 3};
    small.num_res_blocks = 2;
    CHECK(small.parameter_count() == allocated(small));
    small.num_res_blocks = 0;
    CHECK(small.parameter_count() == allocated(small));
  }
}

TEST_CASE("config bounds keep every size finite and small files small", "[tokenizer]") {
  auto rejects = [](void (*change)(TokenizerConfig&), const char* field) {
    TokenizerConfig config = tiny_tokenizer_config();
    change(config);
    INFO(field);
    CHECK_THROWS_WITH(config.validate(), Catch::Contains(std::string("tokenizer.") + field));
  };
  rejects([](TokenizerConfig& c) { c.filters = 1'000'000'000; }, "filters");
  rejects([](TokenizerConfig& c) { c.filters = int64_t{1} << 62; }, "filters");
  rejects([](TokenizerConfig& c) { c.channel_multipliers = {1, int64_t{1} << 40}; }, "channel_multipliers");
  rejects([](TokenizerConfig& c) { c.channel_multipliers = {1, 4096}; }, "channel_multipliers");
  rejects([](TokenizerConfig& c) { c.embedding_dim = -3; }, "embedding_dim");
  rejects([](TokenizerConfig& c) { c.codebook_size = int64_t{1} << 30; }, "codebook_size");
  rejects([](TokenizerConfig& c) { c.norm_eps = std::nan(""); }, "norm_eps");
  rejects([](TokenizerConfig& c) {
    c.filters = 8192;
    c.norm_groups = 8;
    c.channel_multipliers = {1, 1, 1, 1, 1, 1, 1, 1};
    c.num_res_blocks = 16;
  }, "filters");  // 8192-wide at every level: far more than 2^30 parameters
}

TEST_CASE("config validation names the field", "[tokenizer]") {
  TokenizerConfig config = tiny_tokenizer_config();
  config.norm_groups = 3;
  CHECK_THROWS_WITH(config.validate(), Catch::Contains("tokenizer.norm_groups"));
  Json json = tiny_tokenizer_config().to_json();
  json["codebook_size"] = "many";
  CHECK_THROWS_WITH(TokenizerConfig::from_json(json), Catch::Contains("codebook_size"));
  CHECK_THROWS_WITH(json.get<TokenizerConfig>(), Catch::StartsWith("tokenizer.codebook_size: expected an integer, got a string"));
}

TEST_CASE("a model directory round-trips and rejects mismatched weights", "[tokenizer][model]") {
  const fs::path dir = testing::fresh_temp_dir("test-modeldir");
  torch::manual_seed(3);
  ModelConfig config;
  config.directory = dir.string();
  config.class_names = {"a", "b"};
  config.tokenizer = tiny_tokenizer_config();
  VQTokenizer tokenizer(*config.tokenizer);
  tokenizer->eval();
  write_model_config(config);
  save_tokenizer_weights(config, tokenizer);

  const ModelConfig loaded = read_model_config(dir.string());
  CHECK(loaded.class_names == config.class_names);
  VQTokenizer restored = load_tokenizer(loaded, torch::kCPU);
  torch::Tensor images = torch::rand({2, 1, 8, 8});
  CHECK(torch::equal(tokenizer->encode(images), restored->encode(images)));

  // Same file, different architecture in config.json: a shape error naming the tensor.
  ModelConfig wider = loaded;
  wider.tokenizer->embedding_dim = 6;
  CHECK_THROWS_WITH(load_tokenizer(wider, torch::kCPU), Catch::Contains("shape"));
  // Non-finite weights are bad input, naming the tensor.
  {
    SafetensorsFile weights = read_safetensors((dir / kTokenizerWeightsFile).string());
    SafetensorsEntry& codebook = *std::find_if(weights.tensors.begin(), weights.tensors.end(),
                                               [](const SafetensorsEntry& e) { return e.name == "quantizer.codebook"; });
    const float nan = std::nanf("");
    std::memcpy(codebook.data.data() + 4, &nan, sizeof nan);
    const fs::path poisoned = dir.parent_path() / "test-modeldir-nan";
    fs::remove_all(poisoned);
    fs::copy(dir, poisoned);
    write_safetensors((poisoned / kTokenizerWeightsFile).string(), weights);
    ModelConfig at_poisoned = loaded;
    at_poisoned.directory = poisoned.string();
    CHECK_THROWS_WITH(load_tokenizer(at_poisoned, torch::kCPU),
                      Catch::Contains("quantizer.codebook") && Catch::Contains("non-finite"));
    fs::remove_all(poisoned);
  }
  // A config.json describing a far bigger model than its weights file is refused before the
  // model is built (a small file never makes the tool allocate a big model).
  ModelConfig huge = loaded;
  huge.tokenizer->filters = 512;
  huge.tokenizer->norm_groups = 8;
  CHECK_THROWS_WITH(load_tokenizer(huge, torch::kCPU), Catch::Contains("cannot hold the") && Catch::Contains("parameters"));
  // A truncated weights file is rejected with the file's name.
  fs::resize_file(dir / kTokenizerWeightsFile, 100);
  CHECK_THROWS_WITH(load_tokenizer(loaded, torch::kCPU), Catch::Contains("tokenizer.safetensors"));
  // A config.json that is not JSON.
  write_file_atomic((dir / kModelConfigFile).string(), "{\"format\": ");
  CHECK_THROWS_WITH(read_model_config(dir.string()), Catch::Contains("config.json"));
  fs::remove_all(dir);
}

TEST_CASE("token files round-trip and are validated", "[tokenizer]") {
  const fs::path dir = testing::fresh_temp_dir("test-tokens");
  TokenGrid grid;
  grid.ids = torch::randint(0, 16, {3, 4, 5}, torch::kLong);
  grid.labels = torch::tensor({0, 1, 2}, torch::kLong);
  grid.image_height = 8;
  grid.image_width = 10;
  grid.codebook_size = 16;
  const std::string path = (dir / "t.safetensors").string();
  write_token_file(path, grid);
  const TokenGrid read = read_token_file(path);
  CHECK(torch::equal(read.ids, grid.ids));
  CHECK(torch::equal(read.labels, grid.labels));
  CHECK(read.image_width == 10);
  grid.codebook_size = 8;  // ids now out of range for the declared codebook
  write_token_file(path, grid);
  CHECK_THROWS_WITH(read_token_file(path), Catch::Contains("outside"));
  grid.codebook_size = 16;

  // Hostile files (fuzz/fuzz_token_file): every field is checked, every refusal names the file.
  const auto refused = [&](const SafetensorsFile& file, const std::string& why) {
    write_safetensors(path, file);
    try {
      read_token_file(path);
      FAIL("accepted a token file with " << why);
    } catch (const Error& e) {
      CHECK(e.code() == ExitCode::bad_input);
      CHECK_THAT(e.what(), Catch::StartsWith(path + ": ") && Catch::Contains(why));
    }
  };
  const auto token_file = [&](const torch::Tensor& ids, const torch::Tensor& labels) {
    SafetensorsFile file;
    file.tensors.push_back(tensor_to_entry("ids", ids));
    if (labels.defined()) file.tensors.push_back(tensor_to_entry("labels", labels));
    file.metadata = {{"image_height", "8"}, {"image_width", "10"}, {"codebook_size", "16"}};
    return file;
  };
  const torch::Tensor ids = grid.ids.to(torch::kInt32);
  refused(token_file(ids, torch::tensor({0, -1, 2}, torch::kLong)), "negative class");
  refused(token_file(ids, torch::tensor({0.0f, 1.0f, 2.0f})), "\"labels\" must be an integer tensor, not F32");
  refused(token_file(ids, torch::tensor({0, 1}, torch::kLong)), "\"labels\" must be [N]");
  refused(token_file(ids.to(torch::kFloat32), {}), "\"ids\" must be an integer tensor");
  refused(token_file(torch::zeros({1, 9, 5}, torch::kInt32), {}), "cannot cover a 10x8 image");
  for (const char* value : {" 8", "+8", "8.0", "0", "-3", "16385", "99999999999999999999"}) {
    SafetensorsFile file = token_file(ids, {});
    file.metadata["image_height"] = value;
    refused(file, "metadata \"image_height\" must be a whole number in 1..16384");
  }
  SafetensorsFile huge_codebook = token_file(ids, {});
  huge_codebook.metadata["codebook_size"] = "2147483649";
  refused(huge_codebook, "metadata \"codebook_size\" must be a whole number in 1..2147483648");
  fs::remove_all(dir);
}
