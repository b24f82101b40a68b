#include "tokenizer/config.h"

#include <fmt/format.h>

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace maskgit {

void TokenizerConfig::validate(const std::string& path) const {
  auto require = [&](bool ok, const char* field, const std::string& why) {
    if (!ok) throw std::runtime_error(fmt::format("{}.{}: {}", path, field, why));
  };
  // Bounds well above any published VQGAN (the release: 128 filters, ×4, 1024 × 256 codebook)
  // and low enough that no product below overflows or asks for absurd memory.
  require(channels == 1 || channels == 3, "channels", fmt::format("must be 1 or 3, got {}", channels));
  require(filters >= 1 && filters <= kMaxWidth, "filters", fmt::format("must be in 1..{}", kMaxWidth));
  require(!channel_multipliers.empty() && channel_multipliers.size() <= 8, "channel_multipliers",
          "must list 1 to 8 levels");
  for (int64_t multiplier : channel_multipliers) {
    require(multiplier >= 1 && multiplier <= kMaxWidth, "channel_multipliers",
            fmt::format("every multiplier must be in 1..{}", kMaxWidth));
    require(filters * multiplier <= kMaxWidth, "channel_multipliers",
            fmt::format("filters × multiplier = {} exceeds the widest layer allowed, {}", filters * multiplier,
                        kMaxWidth));
  }
  require(num_res_blocks >= 0 && num_res_blocks <= 16, "num_res_blocks", "must be in 0..16");
  require(codebook_size >= 2 && codebook_size <= kMaxCodebookSize, "codebook_size",
          fmt::format("must be in 2..{}", kMaxCodebookSize));
  require(embedding_dim >= 1 && embedding_dim <= kMaxWidth, "embedding_dim",
          fmt::format("must be in 1..{}", kMaxWidth));
  require(norm_groups >= 1 && norm_groups <= kMaxWidth, "norm_groups", fmt::format("must be in 1..{}", kMaxWidth));
  require(std::isfinite(norm_eps) && norm_eps > 0 && norm_eps <= 1, "norm_eps", "must be in (0, 1]");
  for (int64_t multiplier : channel_multipliers)
    require((filters * multiplier) % norm_groups == 0, "norm_groups",
            fmt::format("{} does not divide the width {} (filters × multiplier)", norm_groups,
                        filters * multiplier));
  require(parameter_count() <= kMaxParameters, "filters",
          fmt::format("the configuration describes {} parameters, more than the {} allowed", parameter_count(),
                      kMaxParameters));
}

int64_t TokenizerConfig::parameter_count() const {
  // Mirrors the modules built in vqgan.cpp; test_tokenizer checks the two agree.
  auto conv = [](int64_t in, int64_t out, int64_t kernel, bool bias) { return in * out * kernel * kernel + (bias ? out : 0); };
  auto group_norm = [](int64_t width) { return 2 * width; };
  auto res_block = [&](int64_t in, int64_t out) {
    int64_t count = group_norm(in) + conv(in, out, 3, false) + group_norm(out) + conv(out, out, 3, false);
    if (in != out) count += conv(release_shortcut ? out : in, out, 1, false);
    return count;
  };
  int64_t count = conv(channels, filters, 3, false);  // encoder
  int64_t width = filters;
  for (int64_t level = 0; level < levels(); ++level)
    for (int64_t r = 0; r < num_res_blocks; ++r) {
      count += res_block(width, filters * channel_multipliers[static_cast<size_t>(level)]);
      width = filters * channel_multipliers[static_cast<size_t>(level)];
    }
  for (int64_t r = 0; r < num_res_blocks; ++r) count += res_block(width, width);
  count += group_norm(width) + conv(width, embedding_dim, 1, true);
  width = filters * channel_multipliers.back();  // decoder
  count += conv(embedding_dim, width, 3, true);
  for (int64_t r = 0; r < num_res_blocks; ++r) count += res_block(width, width);
  for (int64_t level = levels() - 1; level >= 0; --level) {
    for (int64_t r = 0; r < num_res_blocks; ++r) {
      count += res_block(width, filters * channel_multipliers[static_cast<size_t>(level)]);
      width = filters * channel_multipliers[static_cast<size_t>(level)];
    }
    if (level > 0) count += conv(width, width, 3, true);
  }
  count += group_norm(width) + conv(width, channels, 3, true);
  return count + codebook_size * embedding_dim;  // quantizer
}

void to_json(Json& json, const TokenizerConfig& config) {
  json = Json{{"channels", config.channels},
              {"filters", config.filters},
              {"channel_multipliers", config.channel_multipliers},
              {"num_res_blocks", config.num_res_blocks},
              {"codebook_size", config.codebook_size},
              {"embedding_dim", config.embedding_dim},
              {"norm_groups", config.norm_groups},
              {"norm_eps", config.norm_eps},
              {"release_shortcut", config.release_shortcut}};
}

void from_json(const Json& json, TokenizerConfig& config) { config = TokenizerConfig::from_json(json); }

Json TokenizerConfig::to_json() const { return *this; }

TokenizerConfig TokenizerConfig::from_json(const Json& json, const std::string& path) {
  if (!json.is_object()) throw std::runtime_error(path + ": expected an object");
  TokenizerConfig config;
  config.channels = json_int(json, "channels", path);
  config.filters = json_int(json, "filters", path);
  config.channel_multipliers = json_int_list(json, "channel_multipliers", path);
  config.num_res_blocks = json_int(json, "num_res_blocks", path);
  config.codebook_size = json_int(json, "codebook_size", path);
  config.embedding_dim = json_int(json, "embedding_dim", path);
  config.norm_groups = json_int(json, "norm_groups", path);
  config.norm_eps = json_double(json, "norm_eps", path);
  config.release_shortcut = json_bool(json, "release_shortcut", path);
  config.validate(path);
  return config;
}

TokenizerConfig TokenizerConfig::official_imagenet() {
  TokenizerConfig config;
  config.channels = 3;
  config.filters = 128;
  config.channel_multipliers = {1, 1, 2, 2, 4};
  config.num_res_blocks = 2;
  config.codebook_size = 1024;
  config.embedding_dim = 256;
  config.norm_groups = 32;
  config.norm_eps = 1e-6;
  config.release_shortcut = true;
  return config;
}

std::vector<int64_t> parse_int_list(const std::string& text) {
  std::vector<int64_t> values;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    size_t used = 0;
    int64_t value = 0;
    try {
      value = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size())
      throw std::runtime_error(fmt::format("\"{}\" is not a comma-separated list of integers", text));
    values.push_back(value);
  }
  if (values.empty()) throw std::runtime_error("empty list");
  return values;
}

}  // namespace maskgit
