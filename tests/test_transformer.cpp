#include <cmath>
#include <unistd.h>

#include <filesystem>

#include "common/error.h"
#include "compat/torch_compat.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "io/tensor_io.h"
#include "model/model_dir.h"
#include "training/transformer_trainer.h"
#include "transformer/attention.h"
#include "transformer/config.h"
#include "transformer/transformer.h"

#include "test_support.h"
#include "tiny_models.h"

// Catch2 comes last: LibTorch pulls in glog, whose CHECK macro would replace Catch's.
#include <catch2/catch.hpp>

#include "test_errors.h"

using namespace maskgit;
using maskgit::testing::tiny_transformer_config;
namespace fs = std::filesystem;

TEST_CASE("attention dispatch agrees with the plain formula", "[transformer]") {
  torch::manual_seed(0);
  const torch::Tensor q = torch::randn({2, 4, 10, 8}), k = torch::randn({2, 4, 10, 8}), v = torch::randn({2, 4, 10, 8});
  INFO("fused kernels in this build: " << attention_is_fused());
  CHECK(torch::allclose(attend(q, k, v, 0.0, false), attend_plain(q, k, v, 0.0, false), 1e-5, 1e-5));
}

TEST_CASE("vocabulary layout: codes, classes, no-class, mask last", "[transformer]") {
  TransformerConfig config = tiny_transformer_config();
  CHECK(config.class_token(2) == 18);
  CHECK(config.no_class_token_id() == 19);
  CHECK(config.mask_token() == 20);
  CHECK(config.vocabulary_size() == 21);
  config.no_class_token = false;  // the release: V = K + C + 1, mask = K + C
  CHECK(config.mask_token() == 19);
  CHECK(config.no_class_token_id() == -1);
}

TEST_CASE("the transformer is bidirectional and returns image-code logits", "[transformer]") {
  torch::manual_seed(1);
  BidirectionalTransformer model(tiny_transformer_config());
  model->reset_parameters_like_release(3);
  model->eval();
  torch::NoGradGuard no_grad;
  torch::Tensor ids = torch::randint(0, 16, {2, 9});
  const torch::Tensor classes = torch::tensor({16, 17}, torch::kLong);
  torch::Tensor logits = model->image_logits(ids, classes);
  CHECK(logits.sizes() == torch::IntArrayRef({2, 9, 16}));
  // The decoding head is the full head's image-position, image-code slice; with a bias that is
  // not zero, so a misaligned bias slice would show.
  for (auto& parameter : model->named_parameters())
    if (parameter.key() == "MlmLayer_0.mlm_bias") parameter.value().copy_(torch::randn(parameter.value().sizes()));
  const torch::Tensor full = model->forward(torch::cat({classes.unsqueeze(1), ids}, 1));
  logits = model->image_logits(ids, classes);
  CHECK(torch::allclose(logits, full.slice(1, 1).slice(2, 0, 16), 1e-5, 1e-6));
  // Changing the last token changes the first position's logits: attention looks both ways.
  torch::Tensor changed = ids.clone();
  changed[0][8] = (changed[0][8].item<int64_t>() + 1) % 16;
  CHECK_FALSE(torch::allclose(model->image_logits(changed, classes)[0][0], logits[0][0]));
  // Initialisation: truncated normal within ±2σ, zero biases, unit LayerNorm scales.
  const auto state = module_state(*model);
  CHECK(state.at("Embed_0.word_embeddings.weight").abs().max().item<double>() <= 0.04 + 1e-7);
  CHECK(state.at("TransformerLayer_0.Attention_0.self_attention.query.bias").abs().max().item<double>() == 0.0);
  CHECK(state.at("TransformerLayer_1.Mlp_0.layer_output_ln.weight").eq(1.0).all().item<bool>());
}

TEST_CASE("the official ImageNet configuration has the release's layout and size", "[transformer]") {
  const TransformerConfig config = TransformerConfig::official_imagenet();
  BidirectionalTransformer model(config);
  const auto state = module_state(*model);
  auto shape = [&](const std::string& key) {
    INFO(key);
    REQUIRE(state.count(key) == 1);
    return state.at(key).sizes().vec();
  };
  CHECK((shape("Embed_0.word_embeddings.weight") == std::vector<int64_t>{2025, 768}));
  CHECK((shape("Embed_0.position_embeddings.weight") == std::vector<int64_t>{257, 768}));
  CHECK((shape("TransformerLayer_23.Attention_0.self_attention.out.weight") == std::vector<int64_t>{768, 768}));
  CHECK((shape("TransformerLayer_23.Mlp_0.intermediate_output.weight") == std::vector<int64_t>{3072, 768}));
  CHECK((shape("MlmLayer_0.mlm_bias") == std::vector<int64_t>{2025}));
  CHECK(state.count("TransformerLayer_24.Mlp_0.layer_output.weight") == 0);
  int64_t parameters = 0;
  for (const auto& p : model->parameters()) parameters += p.numel();
  CHECK(parameters > 170'000'000);
  CHECK(parameters < 175'000'000);
}

TEST_CASE("training masks follow the cosine ratio and never mask nothing", "[transformer]") {
  auto generator = compat::make_cpu_generator(5);
  const torch::Tensor mask = sample_training_mask(4000, 49, generator);
  const torch::Tensor counts = mask.sum(1);
  CHECK(counts.min().item<int64_t>() >= 1);
  CHECK(counts.max().item<int64_t>() <= 49);
  // E[cos(π/2·r)] = 2/π ≈ 0.64 of the tokens (plus the ceiling).
  CHECK(counts.to(torch::kDouble).mean().item<double>() / 49.0 == Approx(2.0 / M_PI).margin(0.03));
}

TEST_CASE("config round-trips through JSON and validation names fields", "[transformer]") {
  const TransformerConfig config = tiny_transformer_config();
  CHECK(dump_json(TransformerConfig::from_json(parse_json(dump_json(config.to_json()))).to_json()) ==
        dump_json(config.to_json()));
  // nlohmann's conversions: Json(config) writes it, get<>() reads it through the same validation.
  CHECK(Json(config) == config.to_json());
  CHECK(dump_json(Json(config).get<TransformerConfig>().to_json()) == dump_json(config.to_json()));
  Json wrong_type = config;
  wrong_type["num_heads"] = "many";
  CHECK_THROWS_WITH(wrong_type.get<TransformerConfig>(), Catch::StartsWith("transformer.num_heads: expected an integer"));
  TransformerConfig bad = config;
  bad.num_heads = 5;
  CHECK_THROWS_WITH(bad.validate(), Catch::Contains("transformer.num_heads"));
  // Bounds: nothing overflows, nothing absurd is allocated.
  auto rejects = [&](void (*change)(TransformerConfig&), const char* field) {
    TransformerConfig changed = config;
    change(changed);
    INFO(field);
    CHECK_THROWS_WITH(changed.validate(), Catch::Contains(std::string("transformer.") + field));
  };
  rejects([](TransformerConfig& c) { c.grid_height = c.grid_width = 3'000'000'000; }, "grid_height");
  rejects([](TransformerConfig& c) { c.grid_height = c.grid_width = 64 * 2; }, "grid_height");
  rejects([](TransformerConfig& c) { c.grid_height = 64; c.grid_width = 65; }, "grid_width");
  rejects([](TransformerConfig& c) { c.hidden_size = int64_t{1} << 62; }, "hidden_size");
  rejects([](TransformerConfig& c) { c.mlp_dim = 1'000'000'000; }, "mlp_dim");
  rejects([](TransformerConfig& c) { c.codebook_size = int64_t{1} << 40; }, "codebook_size");
  rejects([](TransformerConfig& c) { c.num_classes = -1; }, "num_classes");
  rejects([](TransformerConfig& c) { c.num_heads = 64; c.hidden_size = 64; }, "num_heads");
  rejects([](TransformerConfig& c) { c.dropout = std::nan(""); }, "dropout");
  rejects([](TransformerConfig& c) { c.hidden_size = 8192; c.mlp_dim = 32768; c.num_layers = 256; }, "num_layers");
}

TEST_CASE("parameter_count() is what the transformer allocates", "[transformer]") {
  for (bool no_class_token : {false, true}) {
    TransformerConfig config = tiny_transformer_config();
    config.no_class_token = no_class_token;
    config.grid_height = 3;
    config.grid_width = 5;
    int64_t allocated = 0;
    for (const auto& item : module_state(*BidirectionalTransformer(config))) allocated += item.second.numel();
    CHECK(config.parameter_count() == allocated);
  }
  int64_t official = 0;
  for (const auto& p : BidirectionalTransformer(TransformerConfig::official_imagenet())->parameters()) official += p.numel();
  CHECK(TransformerConfig::official_imagenet().parameter_count() == official);
}

namespace {

// A model directory with an untrained tiny tokenizer over an 8×8 two-class image folder.
fs::path tiny_model_dir(const fs::path& root) {
  torch::manual_seed(11);
  for (int cls = 0; cls < 2; ++cls) {
    const fs::path folder = root / "data" / (cls == 0 ? "dark" : "light");
    fs::create_directories(folder);
    for (int i = 0; i < 32; ++i)
      write_png((folder / (std::to_string(i) + ".png")).string(),
                torch::rand({1, 8, 8}) * 0.5 + 0.5 * cls);
  }
  ModelConfig config;
  config.directory = (root / "model").string();
  config.image_width = config.image_height = 8;
  config.class_names = {"dark", "light"};
  TokenizerConfig tokenizer_config = testing::tiny_tokenizer_config();
  tokenizer_config.codebook_size = 8;
  config.tokenizer = tokenizer_config;
  VQTokenizer tokenizer(tokenizer_config);
  {
    torch::NoGradGuard no_grad;
    tokenizer->quantizer->codebook.normal_();
  }
  write_model_config(config);
  save_tokenizer_weights(config, tokenizer);
  return root;
}

TransformerTrainOptions tiny_training(const fs::path& root, const std::string& out) {
  fs::create_directories(root / out);
  fs::copy(root / "model", root / out, fs::copy_options::recursive | fs::copy_options::skip_existing);
  TransformerTrainOptions options;
  options.data.path = (root / "data").string();
  options.model_dir = (root / out).string();
  options.config.hidden_size = 32;
  options.config.num_layers = 1;
  options.config.num_heads = 2;
  options.config.mlp_dim = 64;
  options.config.dropout = 0.1;
  options.config.attention_dropout = 0.1;
  options.batch_size = 16;
  options.learning_rate = 3e-3;
  options.warmup_steps = 5;
  options.log_every = 10;
  options.checkpoint_every = 10;
  options.quiet = true;
  return options;
}

}  // namespace

TEST_CASE("a tiny MVTM run lowers its loss, and a resumed run matches an uninterrupted one", "[transformer][training]") {
  torch::set_num_threads(1);
  const fs::path root = testing::fresh_temp_dir("mvtm");
  tiny_model_dir(root);

  TransformerTrainOptions straight = tiny_training(root, "straight");
  straight.steps = 60;
  const TransformerTrainResult result = train_transformer(straight);
  INFO("first " << result.first_loss << " last " << result.last_loss);
  CHECK(result.last_loss < 0.8 * result.first_loss);
  const ModelConfig trained = read_model_config(straight.model_dir);
  REQUIRE(trained.transformer.has_value());
  CHECK(trained.transformer->grid_height == 4);
  CHECK(trained.transformer->vocabulary_size() == 8 + 2 + 1 + 1);
  load_transformer(trained, torch::kCPU);

  TransformerTrainOptions split = tiny_training(root, "split");
  split.steps = 60;
  split.stop_after = 30;
  train_transformer(split);
  split.stop_after = -1;
  split.resume = true;
  train_transformer(split);
  const SafetensorsFile a = read_safetensors(straight.model_dir + "/" + kTransformerWeightsFile);
  const SafetensorsFile b = read_safetensors(split.model_dir + "/" + kTransformerWeightsFile);
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    INFO(a.tensors[i].name);
    CHECK(torch::equal(entry_to_tensor(a.tensors[i]), entry_to_tensor(b.tensors[i])));  // bit for bit
  }
  fs::remove_all(root);
}

TEST_CASE("a transformer run started from a trained one (init_from) takes its weights and architecture",
          "[transformer][training]") {
  torch::set_num_threads(1);
  const fs::path root = testing::fresh_temp_dir("mvtm-init");
  tiny_model_dir(root);
  TransformerTrainOptions base = tiny_training(root, "base");
  base.steps = 60;
  base.ema_decay = 0.9;
  const TransformerTrainResult trained = train_transformer(base);

  // A fresh run's first logging window starts near log(8); one started from the base continues
  // near where the base ended, with the base's architecture whatever `config` says.
  TransformerTrainOptions tuned = tiny_training(root, "tuned");
  tuned.init_from = base.model_dir;
  tuned.config.hidden_size = 16;
  tuned.config.num_layers = 2;
  tuned.config.dropout = tuned.config.attention_dropout = 0;
  tuned.dropout_from_options = true;
  tuned.steps = 10;
  tuned.learning_rate = 1e-4;
  tuned.ema_decay = 0.99;  // the EMA starts from the starting weights, not from a fresh initialisation
  const TransformerTrainResult continued = train_transformer(tuned);
  TransformerTrainOptions fresh = tiny_training(root, "fresh");
  fresh.steps = 10;
  const TransformerTrainResult scratch = train_transformer(fresh);
  INFO("base first " << trained.first_loss << " last " << trained.last_loss << "; continued first "
                     << continued.first_loss << "; fresh first " << scratch.first_loss);
  CHECK(continued.first_loss < 0.8 * scratch.first_loss);
  const ModelConfig a = read_model_config(base.model_dir), b = read_model_config(tuned.model_dir);
  REQUIRE(b.transformer.has_value());
  CHECK(b.transformer->hidden_size == 32);
  CHECK(b.transformer->num_layers == 1);
  CHECK(b.transformer->dropout == 0);  // dropout is the run's own when given
  // Tiny steps at a small learning rate: close to the base's weights, not equal.
  BidirectionalTransformer before = load_transformer(a, torch::kCPU), after = load_transformer(b, torch::kCPU);
  const auto old_parameters = before->named_parameters();
  double largest = 0;
  bool changed = false;
  for (const auto& item : after->named_parameters()) {
    largest = std::max(largest, (item.value() - old_parameters[item.key()]).abs().max().item<double>());
    changed = changed || !torch::equal(item.value(), old_parameters[item.key()]);
  }
  CHECK(changed);
  CHECK(largest < 0.05);

  // Without dropout_from_options the starting model's dropout (0.1) is kept.
  TransformerTrainOptions kept = tiny_training(root, "kept");
  kept.init_from = base.model_dir;
  kept.config.dropout = kept.config.attention_dropout = 0;
  kept.steps = 1;
  train_transformer(kept);
  CHECK(read_model_config(kept.model_dir).transformer->dropout == Approx(0.1));

  // A directory whose tokenizer has another codebook than the starting transformer's: refused,
  // naming the option, before any training.
  ModelConfig other = read_model_config((root / "model").string());
  other.directory = (root / "mismatched").string();
  fs::create_directories(other.directory);
  other.tokenizer->codebook_size = 16;
  VQTokenizer other_tokenizer(*other.tokenizer);
  write_model_config(other);
  save_tokenizer_weights(other, other_tokenizer);
  TransformerTrainOptions mismatched = tiny_training(root, "mismatched");
  mismatched.init_from = base.model_dir;
  testing::require_invalid_argument([&] { train_transformer(mismatched); }, "init_from",
                                    {"the tokenizer's codebook has 16"});
  CHECK_FALSE(fs::exists(mismatched.model_dir + "/" + kTransformerWeightsFile));
  // Other class names (same count): the class embeddings would land on the wrong classes.
  ModelConfig renamed = read_model_config((root / "model").string());
  renamed.directory = (root / "renamed").string();
  fs::create_directories(renamed.directory);
  renamed.class_names = {"light", "dark"};
  write_model_config(renamed);
  fs::copy_file(root / "model" / kTokenizerWeightsFile, fs::path(renamed.directory) / kTokenizerWeightsFile);
  TransformerTrainOptions swapped = tiny_training(root, "renamed");
  swapped.init_from = base.model_dir;
  testing::require_invalid_argument([&] { train_transformer(swapped); }, "init_from",
                                    {"classes [\"dark\",\"light\"]"});
  // A directory without a transformer: refused the same way.
  TransformerTrainOptions bare = tiny_training(root, "bare");
  bare.init_from = (root / "model").string();
  testing::require_invalid_argument([&] { train_transformer(bare); }, "init_from");
  fs::remove_all(root);
}

TEST_CASE("a resumed transformer run keeps its recorded loss settings and EMA decay, read strictly",
          "[transformer][training]") {
  torch::set_num_threads(1);
  const fs::path root = testing::fresh_temp_dir("mvtm-recorded");
  tiny_model_dir(root);
  TransformerTrainOptions options = tiny_training(root, "averaged");
  options.steps = 20;
  options.ema_decay = 0.9;
  options.class_dropout = 0.2;
  options.stop_after = 10;
  train_transformer(options);
  const SafetensorsFile good = read_safetensors(options.state_path());
  const Json recorded = parse_json(good.metadata.at("transformer_training"));
  CHECK(recorded.at("ema").get<double>() == 0.9);
  CHECK(recorded.at("class_dropout").get<double>() == 0.2);
  CHECK(recorded.at("label_smoothing").get<double>() == options.label_smoothing);

  // A resume without the decay or the class dropout (a library caller's defaults) takes them
  // from the checkpoint; a bad record is refused, naming the file and the key, and the
  // checkpoint is left as it was.
  options.ema_decay = 0;
  options.class_dropout = 0.1;
  options.stop_after = -1;
  options.resume = true;
  for (const std::string& value :
       {std::string("{"), std::string("[]"), std::string(R"({"label_smoothing":0.1,"class_dropout":0.2})"),
        std::string(R"({"label_smoothing":0.1,"class_dropout":0.2,"ema":1})"),
        std::string(R"({"label_smoothing":0.1,"class_dropout":1.5,"ema":0.9})"),
        std::string(R"({"label_smoothing":-0.1,"class_dropout":0.2,"ema":0.9})"),
        std::string(R"({"label_smoothing":0.1,"class_dropout":0.2,"ema":"0.9"})")}) {
    INFO(value);
    SafetensorsFile bad = good;
    bad.metadata["transformer_training"] = value;
    write_safetensors(options.state_path(), bad);
    const std::string before = testing::read_text(options.state_path());
    testing::require_error([&] { train_transformer(options); }, ExitCode::bad_input,
                           {options.state_path(), "transformer_training"});
    CHECK(testing::read_text(options.state_path()) == before);
  }
  // A checkpoint of an earlier version (no record) holding averaged weights needs the decay.
  SafetensorsFile earlier = good;
  earlier.metadata.erase("transformer_training");
  write_safetensors(options.state_path(), earlier);
  testing::require_invalid_argument([&] { train_transformer(options); }, "ema",
                                    {options.state_path(), "holds averaged weights"});

  write_safetensors(options.state_path(), good);
  CHECK(train_transformer(options).steps_done == 20);
  const SafetensorsFile done = read_safetensors(options.state_path());
  const Json kept = parse_json(done.metadata.at("transformer_training"));
  CHECK(kept.at("ema").get<double>() == 0.9);
  CHECK(kept.at("class_dropout").get<double>() == 0.2);
  // The shipped weights are still the average, which the checkpoint carries on.
  const SafetensorsFile shipped = read_safetensors(options.model_dir + "/" + kTransformerWeightsFile);
  int64_t averaged = 0;
  for (const SafetensorsEntry& entry : done.tensors) {
    if (entry.name.rfind("ema.", 0) != 0) continue;
    INFO(entry.name);
    const SafetensorsEntry* weights = shipped.find(entry.name.substr(4));
    REQUIRE(weights != nullptr);
    CHECK(torch::equal(entry_to_tensor(entry), entry_to_tensor(*weights)));
    ++averaged;
  }
  int64_t started_with = 0;  // the averages the stopped run wrote
  for (const SafetensorsEntry& entry : good.tensors) started_with += entry.name.rfind("ema.", 0) == 0 ? 1 : 0;
  CHECK(averaged > 0);
  CHECK(averaged == started_with);
  fs::remove_all(root);
}
