#include "transformer/config.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

namespace maskgit {

void TransformerConfig::validate(const std::string& path) const {
  auto require = [&](bool ok, const char* field, const std::string& why) {
    if (!ok) throw std::runtime_error(fmt::format("{}.{}: {}", path, field, why));
  };
  // Bounds well above the release (768 hidden, 24 layers, 3072 MLP, 1024 codes, 1000 classes,
  // 32×32 tokens at 512) and low enough that no product below overflows.
  require(codebook_size >= 2 && codebook_size <= kMaxVocabulary, "codebook_size",
          fmt::format("must be in 2..{}", kMaxVocabulary));
  require(num_classes >= 1 && num_classes <= kMaxVocabulary, "num_classes",
          fmt::format("must be in 1..{}", kMaxVocabulary));
  require(grid_height >= 1 && grid_height <= kMaxGridSide, "grid_height", fmt::format("must be in 1..{}", kMaxGridSide));
  require(grid_width >= 1 && grid_width <= kMaxGridSide, "grid_width", fmt::format("must be in 1..{}", kMaxGridSide));
  require(grid_height * grid_width <= kMaxTokens, "grid_width",
          fmt::format("the grid has {} cells, more than the {} allowed", grid_height * grid_width, kMaxTokens));
  require(hidden_size >= 1 && hidden_size <= kMaxWidth, "hidden_size", fmt::format("must be in 1..{}", kMaxWidth));
  require(num_layers >= 1 && num_layers <= 256, "num_layers", "must be in 1..256");
  require(num_heads >= 1 && num_heads <= kMaxHeads, "num_heads", fmt::format("must be in 1..{}", kMaxHeads));
  require(hidden_size % num_heads == 0, "num_heads", fmt::format("must divide hidden_size {}", hidden_size));
  require(mlp_dim >= 1 && mlp_dim <= 4 * kMaxWidth, "mlp_dim", fmt::format("must be in 1..{}", 4 * kMaxWidth));
  require(std::isfinite(dropout) && dropout >= 0 && dropout < 1, "dropout", "must be in [0, 1)");
  require(std::isfinite(attention_dropout) && attention_dropout >= 0 && attention_dropout < 1, "attention_dropout",
          "must be in [0, 1)");
  require(parameter_count() <= kMaxParameters, "num_layers",
          fmt::format("the configuration describes {} parameters, more than the {} allowed", parameter_count(),
                      kMaxParameters));
}

int64_t TransformerConfig::parameter_count() const {
  // Mirrors the modules built in transformer.cpp; test_transformer checks the two agree.
  const int64_t h = hidden_size;
  auto linear = [](int64_t in, int64_t out) { return in * out + out; };
  const int64_t layer_norm = 2 * h;
  const int64_t embeddings = vocabulary_size() * h + sequence_length() * h + layer_norm;
  const int64_t attention = 4 * linear(h, h) + layer_norm;
  const int64_t mlp = linear(h, mlp_dim) + linear(mlp_dim, h) + layer_norm;
  const int64_t head = linear(h, h) + layer_norm + vocabulary_size();
  return embeddings + num_layers * (attention + mlp) + head;
}

void to_json(Json& json, const TransformerConfig& config) {
  json = Json{{"codebook_size", config.codebook_size},
              {"num_classes", config.num_classes},
              {"grid_height", config.grid_height},
              {"grid_width", config.grid_width},
              {"hidden_size", config.hidden_size},
              {"num_layers", config.num_layers},
              {"num_heads", config.num_heads},
              {"mlp_dim", config.mlp_dim},
              {"dropout", config.dropout},
              {"attention_dropout", config.attention_dropout},
              {"no_class_token", config.no_class_token}};
}

void from_json(const Json& json, TransformerConfig& config) { config = TransformerConfig::from_json(json); }

Json TransformerConfig::to_json() const { return *this; }

TransformerConfig TransformerConfig::from_json(const Json& json, const std::string& path) {
  if (!json.is_object()) throw std::runtime_error(path + ": expected an object");
  TransformerConfig config;
  config.codebook_size = json_int(json, "codebook_size", path);
  config.num_classes = json_int(json, "num_classes", path);
  config.grid_height = json_int(json, "grid_height", path);
  config.grid_width = json_int(json, "grid_width", path);
  config.hidden_size = json_int(json, "hidden_size", path);
  config.num_layers = json_int(json, "num_layers", path);
  config.num_heads = json_int(json, "num_heads", path);
  config.mlp_dim = json_int(json, "mlp_dim", path);
  config.dropout = json_double(json, "dropout", path);
  config.attention_dropout = json_double(json, "attention_dropout", path);
  config.no_class_token = json_bool(json, "no_class_token", path);
  config.validate(path);
  return config;
}

TransformerConfig TransformerConfig::official_imagenet(int64_t grid) {
  TransformerConfig config;
  config.codebook_size = 1024;
  config.num_classes = 1000;
  config.grid_height = grid;
  config.grid_width = grid;
  config.hidden_size = 768;
  config.num_layers = 24;
  config.num_heads = 16;
  config.mlp_dim = 3072;
  config.dropout = 0.1;
  config.attention_dropout = 0.1;
  config.no_class_token = false;
  return config;
}

}  // namespace maskgit
