// maskgit-convert's pieces: the Flax msgpack reader (with a table of corrupt files), the
// release layout mapping, configuration inference, and the all-or-nothing model directory.
// Checkpoints are built here with msgpack-cxx's packer from our own modules in the release's
// layout as docs/model.md §4 states it, by code separate from the converter's mapping; a
// misreading shared by both would still pass here. The release's layout itself is checked
// against an independent numpy reference by release:parity-* (tests/reference/).
#include "test_support.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#ifndef MSGPACK_NO_BOOST
#define MSGPACK_NO_BOOST
#endif
#include <msgpack.hpp>

#include "common/error.h"
#include "convert/convert_model.h"
#include "convert/flax_msgpack.h"
#include "convert/release_checkpoint.h"
#include "model/model_dir.h"

#include <fmt/format.h>

#include <catch2/catch.hpp>  // after LibTorch's headers, whose glog defines its own CHECK

using namespace maskgit;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

// A release-structure tokenizer at a small width: 5 levels (16 pixels a token), 2 res blocks,
// 32-group norms, the shortcut quirk.
TokenizerConfig release_like_tokenizer() {
  TokenizerConfig config = TokenizerConfig::official_imagenet();
  config.filters = 32;
  config.codebook_size = 64;
  config.embedding_dim = 32;
  return config;
}

TransformerConfig release_like_transformer() {
  TransformerConfig config = TransformerConfig::official_imagenet(2);
  config.codebook_size = 64;
  config.num_classes = 5;
  config.hidden_size = 64;
  config.num_heads = 4;
  config.mlp_dim = 96;
  config.num_layers = 2;
  return config;
}

// The release's layout (docs/model.md §4.3): from our parameter to the release's stored array.
std::map<std::string, torch::Tensor> release_arrays(const torch::nn::Module& module, int64_t heads) {
  std::map<std::string, torch::Tensor> arrays;
  for (const auto& item : module.named_parameters()) {
    const std::string& name = item.key();
    const torch::Tensor& p = item.value().detach();
    std::string path = name;
    for (char& c : path) c = c == '.' ? '/' : c;
    const std::string owner_path = path.substr(0, path.rfind('/'));
    const std::string owner = owner_path.substr(owner_path.rfind('/') + 1);
    const bool weight = name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0;
    torch::Tensor stored = p.clone();
    if (name.find("codebook") != std::string::npos) {
    } else if (name.find("mlm_bias") != std::string::npos) {
      path += "/bias";
    } else if (owner.rfind("GroupNorm_", 0) == 0 || owner.size() > 3 && owner.compare(owner.size() - 3, 3, "_ln") == 0) {
      path = owner_path + (weight ? "/scale" : "/bias");
    } else if (owner == "word_embeddings" || owner == "position_embeddings") {
      path = owner_path + "/embedding";
    } else {
      path = owner_path + (weight ? "/kernel" : "/bias");
      const bool attention = owner_path.find("self_attention") != std::string::npos;
      const int64_t hidden = p.size(0);
      if (owner.rfind("Conv_", 0) == 0) {
        if (weight) stored = p.permute({2, 3, 1, 0}).contiguous();
      } else if (attention && (owner == "query" || owner == "key" || owner == "value")) {
        stored = weight ? p.t().reshape({hidden, heads, hidden / heads}).contiguous() : p.reshape({heads, hidden / heads});
      } else if (attention && owner == "out" && weight) {
        stored = p.t().reshape({heads, hidden / heads, hidden}).contiguous();
      } else if (weight) {
        stored = p.t().contiguous();
      }
    }
    arrays[path] = stored;
  }
  return arrays;
}

void pack_array(Packer& packer, const torch::Tensor& tensor, const std::string& dtype = "float32") {
  msgpack::sbuffer payload;
  Packer inner(payload);
  inner.pack_array(3);
  inner.pack_array(static_cast<uint32_t>(tensor.dim()));
  for (int64_t size : tensor.sizes()) inner.pack(static_cast<uint64_t>(size));
  inner.pack(dtype);
  const torch::Tensor data = tensor.contiguous();
  inner.pack_bin(static_cast<uint32_t>(data.nbytes()));
  inner.pack_bin_body(static_cast<const char*>(data.data_ptr()), static_cast<uint32_t>(data.nbytes()));
  packer.pack_ext(payload.size(), 1);
  packer.pack_ext_body(payload.data(), static_cast<uint32_t>(payload.size()));
}

// Nested maps from '/'-joined paths, as flax.serialization writes {"params": tree}; keys are
// written in reverse order (files need not be sorted).
struct Tree {
  std::map<std::string, Tree> children;
  torch::Tensor leaf;
};

void pack_tree(Packer& packer, const Tree& tree) {
  if (tree.leaf.defined()) return pack_array(packer, tree.leaf);
  packer.pack_map(static_cast<uint32_t>(tree.children.size()));
  for (auto it = tree.children.rbegin(); it != tree.children.rend(); ++it) {
    packer.pack(it->first);
    pack_tree(packer, it->second);
  }
}

std::string checkpoint_bytes(const std::map<std::string, torch::Tensor>& arrays) {
  Tree root;
  for (const auto& entry : arrays) {
    Tree* node = &root.children["params"];
    std::string rest = entry.first;
    for (size_t slash; (slash = rest.find('/')) != std::string::npos; rest = rest.substr(slash + 1))
      node = &node->children[rest.substr(0, slash)];
    node->children[rest].leaf = entry.second;
  }
  msgpack::sbuffer buffer;
  Packer packer(buffer);
  pack_tree(packer, root);
  return std::string(buffer.data(), buffer.size());
}

// One msgpack value built by `build`.
std::string packed(const std::function<void(Packer&)>& build) {
  msgpack::sbuffer buffer;
  Packer packer(buffer);
  build(packer);
  return std::string(buffer.data(), buffer.size());
}

// {"params": {"w": <value>}}
std::string params_with(const std::function<void(Packer&)>& value) {
  return packed([&](Packer& p) {
    p.pack_map(1);
    p.pack(std::string("params"));
    p.pack_map(1);
    p.pack(std::string("w"));
    value(p);
  });
}

std::string array_payload(const std::function<void(Packer&)>& triple) {
  return params_with([&](Packer& p) {
    const std::string payload = packed(triple);
    p.pack_ext(payload.size(), 1);
    p.pack_ext_body(payload.data(), static_cast<uint32_t>(payload.size()));
  });
}

std::string error_of(const std::function<void()>& body) {
  try {
    body();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

}  // namespace

TEST_CASE("A release-layout tokenizer converts back to the same weights and outputs") {
  torch::manual_seed(3);
  const TokenizerConfig config = release_like_tokenizer();
  VQTokenizer original(config);
  for (auto& parameter : original->parameters()) parameter.data().normal_(0, 0.1);
  const FlaxCheckpoint checkpoint = FlaxCheckpoint::parse(checkpoint_bytes(release_arrays(*original, 0)), "tok");
  const TokenizerConfig inferred = infer_tokenizer_config(checkpoint);
  CHECK(inferred.to_json() == config.to_json());
  VQTokenizer converted(inferred);
  load_release_parameters(*converted, checkpoint);
  const auto a = original->named_parameters(), b = converted->named_parameters();
  for (const auto& item : a) CHECK(torch::equal(item.value(), b[item.key()]));
  const torch::Tensor images = torch::rand({1, 3, 32, 32});
  CHECK(torch::equal(original->encode(images), converted->encode(images)));
}

TEST_CASE("A release-layout transformer converts back: heads, dense kernels, tied embedding, MLM bias") {
  torch::manual_seed(4);
  const TransformerConfig config = release_like_transformer();
  BidirectionalTransformer original(config);
  for (auto& parameter : original->parameters()) parameter.data().normal_(0, 0.1);
  const auto arrays = release_arrays(*original, config.num_heads);
  // The release's shapes (docs/model.md §4.3): per-head kernels, the tied embedding's vocabulary.
  CHECK(arrays.at("TransformerLayer_0/Attention_0/self_attention/query/kernel").sizes() == torch::IntArrayRef({64, 4, 16}));
  CHECK(arrays.at("TransformerLayer_1/Attention_0/self_attention/out/kernel").sizes() == torch::IntArrayRef({4, 16, 64}));
  CHECK(arrays.at("MlmLayer_0/mlm_bias/bias").size(0) == 64 + 5 + 1);
  const FlaxCheckpoint checkpoint = FlaxCheckpoint::parse(checkpoint_bytes(arrays), "tr");
  const TransformerConfig inferred = infer_transformer_config(checkpoint, config.codebook_size);
  CHECK(inferred.to_json() == config.to_json());
  CHECK_FALSE(inferred.no_class_token);
  CHECK(inferred.mask_token() == 64 + 5);
  BidirectionalTransformer converted(inferred);
  load_release_parameters(*converted, checkpoint);
  original->eval();
  converted->eval();
  const torch::Tensor ids = torch::tensor({64 + 2, 3, 69, 69, 10}, torch::kLong).unsqueeze(0);
  CHECK(torch::equal(original->forward(ids), converted->forward(ids)));
}

TEST_CASE("Release mapping: paths and stored shapes follow the release's layout") {
  CHECK(release_mapping("encoder.ResBlock_3.Conv_1.weight", {256, 128, 3, 3}, 0).path == "encoder/ResBlock_3/Conv_1/kernel");
  CHECK(release_mapping("encoder.ResBlock_3.Conv_1.weight", {256, 128, 3, 3}, 0).stored_shape ==
        std::vector<int64_t>{3, 3, 128, 256});
  CHECK(release_mapping("decoder.GroupNorm_0.weight", {128}, 0).path == "decoder/GroupNorm_0/scale");
  CHECK(release_mapping("Embed_0.embeddings_ln.bias", {768}, 16).path == "Embed_0/embeddings_ln/bias");
  CHECK(release_mapping("TransformerLayer_5.Attention_0.self_attention.value.bias", {768}, 16).stored_shape ==
        std::vector<int64_t>{16, 48});
  CHECK(release_mapping("TransformerLayer_5.Attention_0.self_attention.out.weight", {768, 768}, 16).stored_shape ==
        std::vector<int64_t>{16, 48, 768});
  CHECK(release_mapping("TransformerLayer_5.Mlp_0.intermediate_output.weight", {3072, 768}, 16).stored_shape ==
        std::vector<int64_t>{768, 3072});
  CHECK(release_mapping("MlmLayer_0.mlm_bias", {2025}, 16).path == "MlmLayer_0/mlm_bias/bias");
  CHECK(release_mapping("Embed_0.word_embeddings.weight", {2025, 768}, 16).path == "Embed_0/word_embeddings/embedding");
}

TEST_CASE("Official configurations: parameter counts and mapped paths match the release's totals") {
  // docs/model.md §4.5: tokenizer 168 tensors, 54,515,587 parameters; transformer 393, 172,457,193.
  CHECK(TokenizerConfig::official_imagenet().parameter_count() == 54515587);
  CHECK(TransformerConfig::official_imagenet(16).parameter_count() == 172457193);
}

TEST_CASE("Mapping problems name the path: missing, unexpected, mis-shaped, non-finite") {
  torch::manual_seed(5);
  const TransformerConfig config = release_like_transformer();
  BidirectionalTransformer model(config);
  const auto good = release_arrays(*model, config.num_heads);
  auto convert = [&](const std::map<std::string, torch::Tensor>& arrays) {
    return error_of([&] {
      const FlaxCheckpoint checkpoint = FlaxCheckpoint::parse(checkpoint_bytes(arrays), "ckpt");
      BidirectionalTransformer target(infer_transformer_config(checkpoint, config.codebook_size));
      load_release_parameters(*target, checkpoint);
    });
  };
  CHECK(convert(good) == "(no error)");
  auto missing = good;
  missing.erase("TransformerLayer_1/Mlp_0/layer_output_ln/scale");
  CHECK_THAT(convert(missing), Contains("ckpt: TransformerLayer_1/Mlp_0/layer_output_ln/scale: missing"));
  auto extra = good;
  extra["TransformerLayer_1/Mlp_0/extra/kernel"] = torch::zeros({2, 2});
  CHECK_THAT(convert(extra), Contains("TransformerLayer_1/Mlp_0/extra/kernel: unexpected"));
  auto extra_layer = good;
  extra_layer["TransformerLayer_7/Mlp_0/layer_output/bias"] = torch::zeros({64});
  CHECK_THAT(convert(extra_layer), Contains("TransformerLayer_7/Mlp_0/layer_output/bias: unexpected"));
  auto misshaped = good;
  misshaped["TransformerLayer_0/Attention_0/self_attention/key/kernel"] = torch::zeros({64, 64});
  CHECK_THAT(convert(misshaped),
             Contains("TransformerLayer_0/Attention_0/self_attention/key/kernel: shape [64, 64], expected [64, 4, 16]"));
  auto nan = good;
  nan["MlmLayer_0/mlm_bias/bias"] = nan["MlmLayer_0/mlm_bias/bias"].clone();
  nan["MlmLayer_0/mlm_bias/bias"][3] = std::nan("");
  CHECK_THAT(convert(nan), Contains("MlmLayer_0/mlm_bias/bias: holds NaN or infinity"));
  auto square = good;
  square["Embed_0/position_embeddings/embedding"] = torch::zeros({7, 64});
  CHECK_THAT(convert(square), Contains("Embed_0/position_embeddings/embedding: 7 rows is not 1 + h·w"));
  auto tiny_vocabulary = good;
  tiny_vocabulary["Embed_0/word_embeddings/embedding"] = torch::zeros({65, 64});
  CHECK_THAT(convert(tiny_vocabulary), Contains("leave no class tokens"));
  // Many problems: the first few, then a count, all on one line.
  auto many = good;
  for (int i = 0; i < 2; ++i)
    for (const char* part : {"query", "key", "value", "out"})
      many.erase(fmt::format("TransformerLayer_{}/Attention_0/self_attention/{}/bias", i, part));
  const std::string message = convert(many);
  CHECK_THAT(message, Contains("and 4 more"));
  CHECK(message.find('\n') == std::string::npos);
}

TEST_CASE("Flax msgpack reader: float16, bfloat16 and float64 arrays are read, other dtypes refused by name") {
  const torch::Tensor values = torch::tensor({0.5f, -2.0f, 3.25f});
  for (const auto& [name, dtype] : std::vector<std::pair<std::string, torch::ScalarType>>{
           {"float16", torch::kFloat16}, {"bfloat16", torch::kBFloat16}, {"float64", torch::kFloat64}}) {
    const std::string bytes = params_with([&](Packer& p) { pack_array(p, values.to(dtype), name); });
    const FlaxCheckpoint checkpoint = FlaxCheckpoint::parse(bytes, "f");
    REQUIRE(checkpoint.find("w"));
    CHECK(std::string(flax_dtype_name(checkpoint.find("w")->dtype)) == name);
    CHECK(checkpoint.find("w")->bytes == 3 * flax_dtype_size(checkpoint.find("w")->dtype));
  }
  CHECK_THAT(error_of([&] { FlaxCheckpoint::parse(params_with([&](Packer& p) { pack_array(p, values.to(torch::kInt), "int32"); }), "f"); }),
             Contains("f: w: dtype \"int32\" is not supported"));
}

TEST_CASE("Flax msgpack reader: a table of malformed files, each refused with its own message") {
  const torch::Tensor two = torch::ones({2});
  const std::string good = params_with([&](Packer& p) { pack_array(p, two); });
  REQUIRE_NOTHROW(FlaxCheckpoint::parse(good, "c"));
  struct Case {
    const char* what;
    std::string bytes;
    const char* message;
  };
  std::vector<Case> cases = {
      {"empty", "", "empty file"},
      {"not a map", packed([](Packer& p) { p.pack(42); }), "expected a Flax checkpoint (a map holding \"params\"), got a integer"},
      {"another top-level entry", packed([&](Packer& p) {
         p.pack_map(1);
         p.pack(std::string("opt_state"));
         p.pack_map(0);
       }), "unexpected top-level entry \"opt_state\""},
      {"no params", packed([](Packer& p) { p.pack_map(0); }), "no \"params\" entry"},
      {"params not a map", packed([](Packer& p) {
         p.pack_map(1);
         p.pack(std::string("params"));
         p.pack(1);
       }), "params: expected a map, got a integer"},
      {"no arrays", packed([](Packer& p) {
         p.pack_map(1);
         p.pack(std::string("params"));
         p.pack_map(0);
       }), "params: holds no arrays"},
      {"a leaf that is not an array", params_with([](Packer& p) { p.pack(1.5); }), "w: expected an array or a map, got a float"},
      {"a numpy scalar", params_with([](Packer& p) {
         p.pack_ext(1, 3);
         p.pack_ext_body("x", 1);
       }), "w: a numpy scalar"},
      {"an unknown extension", params_with([](Packer& p) {
         p.pack_ext(1, 9);
         p.pack_ext_body("x", 1);
       }), "w: msgpack extension type 9 is not a Flax array"},
      {"payload not a triple", array_payload([](Packer& p) { p.pack_array(2); p.pack(1); p.pack(2); }),
       "expected (shape, dtype, bytes), got a list"},
      {"payload not msgpack", params_with([](Packer& p) {
         p.pack_ext(1, 1);
         p.pack_ext_body("\xc1", 1);
       }), "w (array payload): not valid msgpack"},
      {"shape not a list", array_payload([](Packer& p) { p.pack_array(3); p.pack(2); p.pack(std::string("float32")); p.pack_bin(0); }),
       "w: shape: expected a list of sizes"},
      {"negative size", array_payload([](Packer& p) {
         p.pack_array(3);
         p.pack_array(1);
         p.pack(-2);
         p.pack(std::string("float32"));
         p.pack_bin(0);
       }), "w: shape: dimension 0 is not a non-negative integer"},
      {"too many dimensions", array_payload([](Packer& p) {
         p.pack_array(3);
         p.pack_array(9);
         for (int i = 0; i < 9; ++i) p.pack(1);
         p.pack(std::string("float32"));
         p.pack_bin(4);
         p.pack_bin_body("abcd", 4);
       }), "w: shape: 9 dimensions, at most 8"},
      {"an overflowing shape", array_payload([](Packer& p) {
         p.pack_array(3);
         p.pack_array(3);
         for (int i = 0; i < 3; ++i) p.pack(uint64_t{1} << 30);
         p.pack(std::string("float32"));
         p.pack_bin(0);
       }), "w: shape: too many elements"},
      {"data shorter than the shape", array_payload([](Packer& p) {
         p.pack_array(3);
         p.pack_array(1);
         p.pack(3);
         p.pack(std::string("float32"));
         p.pack_bin(8);
         p.pack_bin_body("abcdefgh", 8);
       }), "w: 8 bytes of data, but shape [3] of float32 needs 12"},
      {"dtype not a string", array_payload([](Packer& p) {
         p.pack_array(3);
         p.pack_array(0);
         p.pack(4);
         p.pack_bin(0);
       }), "w: dtype: expected a name"},
      {"a key that is not a string", packed([](Packer& p) {
         p.pack_map(1);
         p.pack(std::string("params"));
         p.pack_map(1);
         p.pack(7);
         p.pack_map(0);
       }), "a key is a integer, not a string"},
      {"a key twice", packed([&](Packer& p) {
         p.pack_map(1);
         p.pack(std::string("params"));
         p.pack_map(2);
         p.pack(std::string("w"));
         pack_array(p, two);
         p.pack(std::string("w"));
         pack_array(p, two);
       }), "w: the key appears twice"},
      {"a chunked array", packed([&](Packer& p) {
         p.pack_map(1);
         p.pack(std::string("params"));
         p.pack_map(1);
         p.pack(std::string("big"));
         p.pack_map(1);
         p.pack(std::string("__msgpack_chunked_array__"));
         p.pack(true);
       }), "big: an array Flax split into chunks"},
      {"trailing bytes", good + "\x01", "1 bytes of trailing data"},
      {"a map claiming 2^32-1 entries", std::string("\xdf\xff\xff\xff\xff", 5), "map and list entries in all"},
      {"a list claiming 2^32-1 entries", std::string("\x81\xa6params\xdd\xff\xff\xff\xff", 13), "map and list entries in all"},
      {"a map claiming 8193 entries", std::string("\x81\xa6params\xde\x20\x01", 11), "a size is beyond the limits"},
  };
  // Nesting deeper than kMaxFlaxDepth.
  std::string deep = "\x81\xa6params";
  for (int i = 0; i < 40; ++i) deep += "\x81\xa1k";
  deep += "\x80";
  cases.push_back({"nesting too deep", deep, "a size is beyond the limits"});
  // Every truncation of a valid file.
  for (size_t cut = 1; cut < good.size(); ++cut)
    cases.push_back({"truncated", good.substr(0, cut), "truncated"});
  for (const Case& c : cases) {
    INFO(c.what);
    const std::string message = error_of([&] { FlaxCheckpoint::parse(c.bytes, "bad.ckpt"); });
    CHECK_THAT(message, Contains("bad.ckpt: ") && Contains(c.message));
    CHECK(message.find('\n') == std::string::npos);
  }
}

TEST_CASE("Flax msgpack reader: files are regular files only") {
  const fs::path dir = maskgit::testing::fresh_temp_dir("flax-files");
  CHECK_THAT(error_of([&] { FlaxCheckpoint::read((dir / "missing").string()); }), Contains("cannot open"));
  CHECK_THAT(error_of([&] { FlaxCheckpoint::read(dir.string()); }), Contains("not a regular file"));
  CHECK_THAT(error_of([&] { FlaxCheckpoint::read("/dev/zero"); }), Contains("not a regular file"));
  write_bytes(dir / "empty", "");
  CHECK_THAT(error_of([&] { FlaxCheckpoint::read((dir / "empty").string()); }), Contains("0 bytes"));
  fs::remove_all(dir);
}

TEST_CASE("convert_release_model writes a model directory all or nothing") {
  torch::manual_seed(6);
  const fs::path dir = maskgit::testing::fresh_temp_dir("convert");
  const TokenizerConfig tokenizer_config = release_like_tokenizer();
  const TransformerConfig transformer_config = release_like_transformer();
  VQTokenizer tokenizer(tokenizer_config);
  BidirectionalTransformer transformer(transformer_config);
  write_bytes(dir / "tokenizer_checkpoint", checkpoint_bytes(release_arrays(*tokenizer, 0)));
  auto transformer_arrays = release_arrays(*transformer, transformer_config.num_heads);
  write_bytes(dir / "transformer_checkpoint", checkpoint_bytes(transformer_arrays));
  ConvertRequest request;
  request.tokenizer_path = (dir / "tokenizer_checkpoint").string();
  request.transformer_path = (dir / "transformer_checkpoint").string();
  request.output_dir = (dir / "models/converted").string();
  auto leftovers = [&] {
    int count = 0;
    for (const auto& entry : fs::recursive_directory_iterator(dir))
      if (entry.path().filename().string().find(".maskgit-convert.") != std::string::npos) ++count;
    return count;
  };

  SECTION("converted, with class names, and loadable") {
    write_bytes(dir / "names.txt", "cat\ndog\r\ncrane\ncrane\nfive\n");
    request.class_names_path = (dir / "names.txt").string();
    const ConvertReport report = convert_release_model(request);
    CHECK(report.config.image_width == 32);
    CHECK_FALSE(report.differences_from_official.empty());
    const ModelConfig config = read_model_config(request.output_dir);
    CHECK(config.class_names == std::vector<std::string>{"cat", "dog", "crane", "crane", "five"});
    CHECK(config.image_channels == 3);
    // Names that repeat (ImageNet's "crane") must be given by id.
    CHECK(resolve_classes(config, {"DOG", "3"}) == std::vector<int64_t>{1, 3});
    CHECK_THAT(error_of([&] { resolve_classes(config, {"crane"}); }),
               Contains("class: \"crane\" names several classes (2, 3): give the class id"));
    CHECK_THAT(error_of([&] { resolve_classes(config, {"cow"}); }),
               Contains("class: unknown class \"cow\" (classes: cat, dog, crane, crane, five)"));
    const auto out_of_range = maskgit::testing::invalid_argument_of([&] { resolve_classes(config, {"5"}); });
    CHECK(out_of_range.argument == "class");
    CHECK(out_of_range.message == "class 5 is out of range (the model has classes 0..4)");
    CHECK_FALSE(config.transformer->no_class_token);
    REQUIRE(config.sampling);
    CHECK(config.sampling->steps == release_sampling_defaults(32).steps);
    BidirectionalTransformer loaded = load_transformer(config, torch::kCPU);
    for (const auto& item : transformer->named_parameters())
      CHECK(torch::equal(item.value(), loaded->named_parameters()[item.key()]));
    CHECK(leftovers() == 0);
    // Without --overwrite an existing model is refused; with it, replaced.
    CHECK_THAT(error_of([&] { convert_release_model(request); }), Contains("exists and is not empty (--overwrite"));
    request.overwrite = true;
    request.class_names_path.clear();
    convert_release_model(request);
    CHECK(read_model_config(request.output_dir).class_names[4] == "4");
    CHECK(leftovers() == 0);
  }
  SECTION("a bad transformer leaves nothing behind") {
    transformer_arrays.erase("MlmLayer_0/mlm_dense/bias");
    write_bytes(dir / "transformer_checkpoint", checkpoint_bytes(transformer_arrays));
    CHECK_THAT(error_of([&] { convert_release_model(request); }), Contains("MlmLayer_0/mlm_dense/bias: missing"));
    CHECK_FALSE(fs::exists(request.output_dir));
    CHECK(leftovers() == 0);
  }
  SECTION("a small file describing a huge model is refused before the model is built") {
    for (int layer = 2; layer < 100; ++layer) transformer_arrays[fmt::format("TransformerLayer_{}/x", layer)] = torch::zeros({1});
    write_bytes(dir / "transformer_checkpoint", checkpoint_bytes(transformer_arrays));
    CHECK_THAT(error_of([&] { convert_release_model(request); }), Contains("transformer_checkpoint: the arrays hold"));
  }
  SECTION("failures create no folders") {
    transformer_arrays["MlmLayer_0/mlm_bias/bias"][0] = std::nan("");
    write_bytes(dir / "transformer_checkpoint", checkpoint_bytes(transformer_arrays));
    request.output_dir = (dir / "new/deeper/model").string();
    CHECK_THAT(error_of([&] { convert_release_model(request); }), Contains("mlm_bias/bias: holds NaN"));
    CHECK_FALSE(fs::exists(dir / "new"));
  }
  SECTION("leftovers of killed conversions are cleaned up; a model moved aside is put back") {
    fs::create_directories(dir / "models/.converted.maskgit-convert.999999999/half");
    fs::create_directories(dir / "models/.converted.maskgit-convert.old.999999998");
    write_bytes(dir / "models/.converted.maskgit-convert.old.999999998/config.json", "{}");
    fs::create_directories(dir / "models/.other.maskgit-convert.999999999");  // another destination's
    // The old model comes back as models/converted, which a conversion without --overwrite refuses.
    CHECK_THAT(error_of([&] { convert_release_model(request); }), Contains("exists and is not empty"));
    CHECK(fs::exists(dir / "models/converted/config.json"));
    CHECK_FALSE(fs::exists(dir / "models/.converted.maskgit-convert.999999999"));
    CHECK(fs::exists(dir / "models/.other.maskgit-convert.999999999"));
  }
  SECTION("class names must match the class count") {
    write_bytes(dir / "names.txt", "a\nb\n");
    request.class_names_path = (dir / "names.txt").string();
    CHECK_THAT(error_of([&] { convert_release_model(request); }), Contains("names.txt: 2 class names, the transformer has 5"));
    write_bytes(dir / "names.txt", "a\n\nb\nc\nd\n");
    CHECK_THAT(error_of([&] { convert_release_model(request); }), Contains("names.txt: line 2: empty class name"));
    write_bytes(dir / "names.txt", "a\nb\xff\xfe\nc\nd\ne\n");
    CHECK_THAT(error_of([&] { convert_release_model(request); }), Contains("names.txt: line 2: not valid UTF-8"));
    CHECK_FALSE(fs::exists(request.output_dir));
  }
  SECTION("destinations checked before reading: files, links, non-model directories") {
    fs::create_directories(dir / "models");
    write_bytes(dir / "models/file", "x");
    request.output_dir = (dir / "models/file").string();
    CHECK_THAT(error_of([&] { convert_release_model(request); }), Contains("exists and is not a directory"));
    fs::create_directories(dir / "models/other");
    write_bytes(dir / "models/other/keep", "x");
    request.output_dir = (dir / "models/other").string();
    request.overwrite = true;
    CHECK_THAT(error_of([&] { convert_release_model(request); }), Contains("is not a model directory"));
    CHECK(fs::exists(dir / "models/other/keep"));
    // A model folder holding more than a converted model's files (a trained model's state).
    fs::create_directories(dir / "models/trained/train-state");
    write_bytes(dir / "models/trained/config.json", "{\"format\": \"maskgit-cpp\"}");
    request.output_dir = (dir / "models/trained").string();
    CHECK_THAT(error_of([&] { convert_release_model(request); }), Contains("holds train-state besides a model's files"));
    CHECK(fs::exists(dir / "models/trained/train-state"));
    fs::create_directory_symlink(dir / "models/other", dir / "models/link");
    request.output_dir = (dir / "models/link").string();
    CHECK_THAT(error_of([&] { convert_release_model(request); }), Contains("is a symbolic link"));
    // An empty directory is filled.
    fs::create_directories(dir / "models/empty");
    request.output_dir = (dir / "models/empty").string() + "/";
    request.overwrite = false;
    convert_release_model(request);
    CHECK(fs::exists(dir / "models/empty/config.json"));
  }
  fs::remove_all(dir);
}
