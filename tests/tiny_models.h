#pragma once
// The tiny model configurations the unit tests build on (include before <catch2/catch.hpp>).
#include "tokenizer/config.h"
#include "transformer/config.h"

namespace maskgit::testing {

// Factor 2 (two levels), 16 codes of 4 dimensions: fast enough for any test.
inline TokenizerConfig tiny_tokenizer_config() {
  TokenizerConfig config;
  config.filters = 8;
  config.channel_multipliers = {1, 2};
  config.num_res_blocks = 1;
  config.codebook_size = 16;
  config.embedding_dim = 4;
  config.norm_groups = 4;
  return config;
}

// 16 codes, 3 classes, a 3×3 grid, 2 layers of 32.
inline TransformerConfig tiny_transformer_config() {
  TransformerConfig config;
  config.codebook_size = 16;
  config.num_classes = 3;
  config.grid_height = 3;
  config.grid_width = 3;
  config.hidden_size = 32;
  config.num_layers = 2;
  config.num_heads = 4;
  config.mlp_dim = 64;
  config.dropout = 0;
  config.attention_dropout = 0;
  return config;
}

}  // namespace maskgit::testing
