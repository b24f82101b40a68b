#pragma once
// Settings of the bidirectional transformer (docs/model.md §3.5). The official ImageNet model
// is one value of this struct; ours is a small one sized for CPU training.
#include <cstdint>
#include <string>

#include "io/json.h"

namespace maskgit {

struct TransformerConfig {
  int64_t codebook_size = 512;  // K: image-code ids are 0..K-1
  int64_t num_classes = 10;     // C: class c is token K + c
  int64_t grid_height = 7;
  int64_t grid_width = 7;
  int64_t hidden_size = 256;
  int64_t num_layers = 4;
  int64_t num_heads = 8;
  int64_t mlp_dim = 1024;
  double dropout = 0.1;
  double attention_dropout = 0.1;
  // A "no class" token (K + C) learnt by class dropout, for unconditional decoding and
  // classifier-free guidance. The release has none.
  bool no_class_token = true;

  int64_t tokens_per_image() const { return grid_height * grid_width; }
  int64_t sequence_length() const { return 1 + tokens_per_image(); }
  int64_t class_token(int64_t class_id) const { return codebook_size + class_id; }
  int64_t no_class_token_id() const { return no_class_token ? codebook_size + num_classes : -1; }
  // The mask token is the last id of the vocabulary (the release writes -1 for it).
  int64_t vocabulary_size() const { return codebook_size + num_classes + (no_class_token ? 1 : 0) + 1; }
  int64_t mask_token() const { return vocabulary_size() - 1; }

  // Bounds checked by validate(); with them no product of fields overflows.
  static constexpr int64_t kMaxVocabulary = int64_t{1} << 20;  // codebook_size, num_classes
  // Attention holds tokens² scores per head and image: 4096 tokens (64×64, a 1024-pixel image at
  // 16 pixels a token) and 32 heads keep that at 2 GiB for one image.
  static constexpr int64_t kMaxGridSide = 64;
  static constexpr int64_t kMaxTokens = 4096;  // grid_height × grid_width
  static constexpr int64_t kMaxHeads = 32;
  static constexpr int64_t kMaxWidth = 8192;   // hidden_size; mlp_dim ≤ 4 × this
  static constexpr int64_t kMaxParameters = int64_t{1} << 31;  // 8 GiB of float32

  // Throws std::runtime_error naming the field (prefixed by `path`) when inconsistent or out of
  // the bounds above.
  void validate(const std::string& path = "transformer") const;

  // Number of scalars BidirectionalTransformer allocates for this configuration. Only
  // meaningful within validate()'s bounds.
  int64_t parameter_count() const;
  Json to_json() const;  // Json(*this), see to_json() below
  static TransformerConfig from_json(const Json& json, const std::string& path = "transformer");
  // google-research/maskgit's 256×256 ImageNet transformer (≈172M parameters), 16×16 tokens;
  // `grid` 32 gives the 512×512 model (same weights' shapes but the position table).
  static TransformerConfig official_imagenet(int64_t grid = 16);
};

// nlohmann's conversions, found by argument-dependent lookup: `Json json = config;` writes every
// field in a fixed order, and `json.get<TransformerConfig>()` reads through the static from_json (every field
// checked, errors naming the dotted path).
void to_json(Json& json, const TransformerConfig& config);
void from_json(const Json& json, TransformerConfig& config);

}  // namespace maskgit
