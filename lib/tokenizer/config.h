#pragma once
// Architecture settings of the VQ tokenizer (docs/model.md §2.1). The official ImageNet
// configuration is one value of this struct; ours is a small one sized for CPU training.
#include <cstdint>
#include <string>
#include <vector>

#include "io/json.h"

namespace maskgit {

struct TokenizerConfig {
  int64_t channels = 1;  // image channels in and out
  int64_t filters = 16;
  std::vector<int64_t> channel_multipliers = {1, 2, 4};
  int64_t num_res_blocks = 1;
  int64_t codebook_size = 512;
  int64_t embedding_dim = 32;
  int64_t norm_groups = 8;  // the release uses 32; small widths need fewer
  double norm_eps = 1e-6;
  // The release's width-changing ResBlock returns h + Conv1x1(h) instead of a residual from
  // its input; released weights depend on it. Off means a true residual x' = Conv1x1(x) + h.
  bool release_shortcut = false;

  int64_t levels() const { return static_cast<int64_t>(channel_multipliers.size()); }
  // Pixels per token side: 2^(levels-1).
  int64_t downsample_factor() const { return int64_t{1} << (levels() - 1); }

  // Bounds checked by validate(): every width (filters × multiplier, embedding_dim) at most
  // kMaxWidth, the codebook at most kMaxCodebookSize entries, and parameter_count() at most
  // kMaxParameters (4 GiB of float32), so that no later product overflows.
  static constexpr int64_t kMaxWidth = 8192;
  static constexpr int64_t kMaxCodebookSize = int64_t{1} << 20;
  static constexpr int64_t kMaxParameters = int64_t{1} << 30;

  // Throws std::runtime_error naming the field (prefixed by `path`) when inconsistent or out of
  // the bounds above.
  void validate(const std::string& path = "tokenizer") const;

  // Number of scalars in the encoder, decoder and codebook this configuration describes
  // (what VQTokenizer allocates). Only meaningful for a configuration within validate()'s
  // width bounds (each factor ≤ 2^13, so no product overflows).
  int64_t parameter_count() const;

  Json to_json() const;  // Json(*this), see to_json() below
  static TokenizerConfig from_json(const Json& json, const std::string& path = "tokenizer");

  // google-research/maskgit's 256×256 ImageNet tokenizer.
  static TokenizerConfig official_imagenet();
};

// nlohmann's conversions, found by argument-dependent lookup: `Json json = config;` writes every
// field in a fixed order, and `json.get<TokenizerConfig>()` reads through the static from_json (every field
// checked, errors naming the dotted path).
void to_json(Json& json, const TokenizerConfig& config);
void from_json(const Json& json, TokenizerConfig& config);

// Parses "1,2,4" into {1,2,4}; throws std::runtime_error on anything else.
std::vector<int64_t> parse_int_list(const std::string& text);

}  // namespace maskgit
