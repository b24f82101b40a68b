#include "convert/release_checkpoint.h"

#include <fmt/format.h>

#include <cstring>
#include <set>
#include <sstream>

#include "common/error.h"

namespace maskgit {
namespace {

enum class Layout {
  same,            // stored as ours
  conv_kernel,     // HWIO → OIHW
  dense_kernel,    // (in, out) → (out, in)
  heads_in,        // q/k/v kernel (H, heads, head_dim) → (H, H)ᵀ
  heads_bias,      // q/k/v bias (heads, head_dim) → (H)
  heads_out,       // out kernel (heads, head_dim, H) → (H, H)ᵀ
};

struct Rule {
  ReleaseMapping mapping;
  Layout layout = Layout::same;
};

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::stringstream stream(text);
  for (std::string part; std::getline(stream, part, separator);) parts.push_back(part);
  return parts;
}

bool starts_with(const std::string& text, const char* prefix) { return text.rfind(prefix, 0) == 0; }
bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string shape_text(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

Rule rule_for(const std::string& name, const std::vector<int64_t>& shape, int64_t num_heads) {
  const std::vector<std::string> parts = split(name, '.');
  if (parts.size() < 2) throw std::logic_error("release_mapping: unexpected parameter name " + name);
  const std::string& leaf = parts.back();
  const std::string& owner = parts[parts.size() - 2];
  std::string prefix;
  for (size_t i = 0; i + 1 < parts.size(); ++i) prefix += (i ? "/" : "") + parts[i];
  Rule rule;
  rule.mapping.stored_shape = shape;
  if (leaf == "codebook") {
    rule.mapping.path = prefix + "/codebook";
    return rule;
  }
  if (leaf == "mlm_bias") {
    rule.mapping.path = prefix + "/mlm_bias/bias";
    return rule;
  }
  if (leaf != "weight" && leaf != "bias") throw std::logic_error("release_mapping: unexpected parameter name " + name);
  const bool weight = leaf == "weight";
  if (starts_with(owner, "GroupNorm_") || ends_with(owner, "_ln")) {
    rule.mapping.path = prefix + (weight ? "/scale" : "/bias");
    return rule;
  }
  if (owner == "word_embeddings" || owner == "position_embeddings") {
    rule.mapping.path = prefix + (weight ? "/embedding" : "/bias");
    return rule;
  }
  rule.mapping.path = prefix + (weight ? "/kernel" : "/bias");
  if (starts_with(owner, "Conv_")) {
    if (weight && shape.size() == 4) {
      rule.mapping.stored_shape = {shape[2], shape[3], shape[1], shape[0]};
      rule.layout = Layout::conv_kernel;
    }
    return rule;
  }
  const bool in_attention = parts.size() >= 3 && parts[parts.size() - 3] == "self_attention";
  if (in_attention && num_heads > 0 && !shape.empty() && shape[0] % num_heads == 0) {
    const int64_t hidden = shape[0], head_dim = hidden / num_heads;
    if (owner == "query" || owner == "key" || owner == "value") {
      rule.mapping.stored_shape = weight ? std::vector<int64_t>{hidden, num_heads, head_dim}
                                         : std::vector<int64_t>{num_heads, head_dim};
      rule.layout = weight ? Layout::heads_in : Layout::heads_bias;
      return rule;
    }
    if (owner == "out" && weight) {
      rule.mapping.stored_shape = {num_heads, head_dim, hidden};
      rule.layout = Layout::heads_out;
      return rule;
    }
  }
  if (weight && shape.size() == 2) {
    rule.mapping.stored_shape = {shape[1], shape[0]};
    rule.layout = Layout::dense_kernel;
  }
  return rule;
}

torch::ScalarType torch_dtype(FlaxDType dtype) {
  switch (dtype) {
    case FlaxDType::float32: return torch::kFloat32;
    case FlaxDType::float16: return torch::kFloat16;
    case FlaxDType::bfloat16: return torch::kBFloat16;
    case FlaxDType::float64: return torch::kFloat64;
  }
  return torch::kFloat32;
}

// A float32 CPU tensor holding a copy of the array (the checkpoint's bytes need not be aligned).
torch::Tensor to_tensor(const FlaxArray& array) {
  torch::Tensor tensor = torch::empty(array.shape, torch::TensorOptions().dtype(torch_dtype(array.dtype)));
  if (array.bytes) std::memcpy(tensor.data_ptr(), array.data, array.bytes);
  return tensor.to(torch::kFloat32);
}

torch::Tensor to_our_layout(const torch::Tensor& stored, Layout layout, const std::vector<int64_t>& shape) {
  switch (layout) {
    case Layout::same: return stored;
    case Layout::conv_kernel: return stored.permute({3, 2, 0, 1});
    case Layout::dense_kernel: return stored.t();
    case Layout::heads_in: return stored.reshape({shape[1], shape[0]}).t();
    case Layout::heads_bias: return stored.reshape({shape[0]});
    case Layout::heads_out: return stored.reshape({shape[1], shape[0]}).t();
  }
  return stored;
}

// Indices i for which "<prefix>i/..." exists, counted from 0 while contiguous.
int64_t count_numbered(const FlaxCheckpoint& checkpoint, const std::string& prefix) {
  std::set<int64_t> present;
  for (const auto& entry : checkpoint.arrays()) {
    const std::string& path = entry.first;
    if (!starts_with(path, prefix.c_str())) continue;
    const size_t end = path.find('/', prefix.size());
    const std::string digits = path.substr(prefix.size(), end == std::string::npos ? std::string::npos : end - prefix.size());
    if (digits.empty() || digits.size() > 6 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    present.insert(std::stoll(digits));
  }
  int64_t count = 0;
  while (present.count(count)) ++count;
  return count;
}

[[noreturn]] void fail(const FlaxCheckpoint& checkpoint, const std::string& problem) {
  throw_bad_input(fmt::format("{}: {}", checkpoint.source(), problem));
}

const FlaxArray& require(const FlaxCheckpoint& checkpoint, const std::string& path, size_t rank, const char* why) {
  const FlaxArray* array = checkpoint.find(path);
  if (!array) fail(checkpoint, fmt::format("{}: missing (needed for {})", path, why));
  if (array->shape.size() != rank)
    fail(checkpoint, fmt::format("{}: shape {} has {} dimensions, expected {}", path, shape_text(array->shape),
                                 array->shape.size(), rank));
  for (int64_t size : array->shape)
    if (size < 1) fail(checkpoint, fmt::format("{}: shape {} has an empty dimension", path, shape_text(array->shape)));
  return *array;
}

}  // namespace

ReleaseMapping release_mapping(const std::string& name, const std::vector<int64_t>& shape, int64_t num_heads) {
  return rule_for(name, shape, num_heads).mapping;
}

TokenizerConfig infer_tokenizer_config(const FlaxCheckpoint& checkpoint) {
  TokenizerConfig config;
  const FlaxArray& conv_in = require(checkpoint, "encoder/Conv_0/kernel", 4, "the image channels and filters");
  config.channels = conv_in.shape[2];
  config.filters = conv_in.shape[3];
  const FlaxArray& codebook = require(checkpoint, "quantizer/codebook", 2, "the codebook size and embedding_dim");
  config.codebook_size = codebook.shape[0];
  config.embedding_dim = codebook.shape[1];
  const int64_t decoder_convs = count_numbered(checkpoint, "decoder/Conv_");
  if (decoder_convs < 2)
    fail(checkpoint, fmt::format("decoder/Conv_{}/kernel: missing (the decoder needs an input and an output conv)",
                                 decoder_convs));
  const int64_t levels = decoder_convs - 1;
  const int64_t encoder_blocks = count_numbered(checkpoint, "encoder/ResBlock_");
  const int64_t decoder_blocks = count_numbered(checkpoint, "decoder/ResBlock_");
  if (encoder_blocks == 0 || encoder_blocks % (levels + 1) != 0)
    fail(checkpoint, fmt::format("encoder/ResBlock_*: {} blocks do not divide into the {} levels (+1) the decoder's "
                                 "{} convs imply", encoder_blocks, levels, decoder_convs));
  config.num_res_blocks = encoder_blocks / (levels + 1);
  if (decoder_blocks != encoder_blocks)
    fail(checkpoint, fmt::format("decoder/ResBlock_*: {} blocks, the encoder has {}", decoder_blocks, encoder_blocks));
  config.channel_multipliers.clear();
  for (int64_t level = 0; level < levels; ++level) {
    const std::string path = fmt::format("encoder/ResBlock_{}/Conv_0/kernel", level * config.num_res_blocks);
    const FlaxArray& kernel = require(checkpoint, path, 4, "the channel multipliers");
    const int64_t width = kernel.shape[3];
    if (width % config.filters != 0)
      fail(checkpoint, fmt::format("{}: {} output channels are not a multiple of the {} filters", path, width,
                                   config.filters));
    config.channel_multipliers.push_back(width / config.filters);
  }
  config.norm_groups = 32;
  config.norm_eps = 1e-6;
  config.release_shortcut = true;
  try {
    config.validate("tokenizer");
  } catch (const std::exception& e) {
    fail(checkpoint, fmt::format("the inferred configuration is not supported: {}", e.what()));
  }
  return config;
}

TransformerConfig infer_transformer_config(const FlaxCheckpoint& checkpoint, int64_t codebook_size) {
  TransformerConfig config;
  const FlaxArray& words = require(checkpoint, "Embed_0/word_embeddings/embedding", 2, "the vocabulary and hidden size");
  const FlaxArray& positions =
      require(checkpoint, "Embed_0/position_embeddings/embedding", 2, "the token grid");
  config.hidden_size = words.shape[1];
  const int64_t vocabulary = words.shape[0];
  const int64_t grid_tokens = positions.shape[0] - 1;
  int64_t side = 0;
  while ((side + 1) * (side + 1) <= grid_tokens && side < TransformerConfig::kMaxGridSide) ++side;
  if (grid_tokens < 1 || side * side != grid_tokens)
    fail(checkpoint, fmt::format("Embed_0/position_embeddings/embedding: {} rows is not 1 + h·w for a square grid "
                                 "of at most {}x{} tokens", positions.shape[0], TransformerConfig::kMaxGridSide,
                                 TransformerConfig::kMaxGridSide));
  config.grid_height = config.grid_width = side;
  config.num_layers = count_numbered(checkpoint, "TransformerLayer_");
  if (config.num_layers == 0) fail(checkpoint, "TransformerLayer_0: missing (no transformer layers)");
  const FlaxArray& query =
      require(checkpoint, "TransformerLayer_0/Attention_0/self_attention/query/kernel", 3, "the number of heads");
  config.num_heads = query.shape[1];
  if (query.shape[0] != config.hidden_size || query.shape[1] * query.shape[2] != config.hidden_size)
    fail(checkpoint, fmt::format("TransformerLayer_0/Attention_0/self_attention/query/kernel: shape {} is not "
                                 "(hidden {}, heads, hidden / heads)", shape_text(query.shape), config.hidden_size));
  const FlaxArray& intermediate =
      require(checkpoint, "TransformerLayer_0/Mlp_0/intermediate_output/kernel", 2, "the MLP width");
  config.mlp_dim = intermediate.shape[1];
  config.codebook_size = codebook_size;
  config.num_classes = vocabulary - codebook_size - 1;
  if (config.num_classes < 1)
    fail(checkpoint, fmt::format("Embed_0/word_embeddings/embedding: {} rows leave no class tokens after the "
                                 "tokenizer's {} codes and the mask token (V = K + C + 1)", vocabulary, codebook_size));
  config.no_class_token = false;
  config.dropout = 0.1;
  config.attention_dropout = 0.1;
  try {
    config.validate("transformer");
  } catch (const std::exception& e) {
    fail(checkpoint, fmt::format("the inferred configuration is not supported: {}", e.what()));
  }
  return config;
}

void load_release_parameters(torch::nn::Module& module, const FlaxCheckpoint& checkpoint) {
  torch::NoGradGuard no_grad;
  if (!module.named_buffers().is_empty()) throw std::logic_error("load_release_parameters: modules with buffers");
  // The attention modules' head count: the query kernel's middle dimension (validated by
  // infer_transformer_config); 0 for the tokenizer.
  int64_t num_heads = 0;
  if (const FlaxArray* query = checkpoint.find("TransformerLayer_0/Attention_0/self_attention/query/kernel"))
    if (query->shape.size() == 3) num_heads = query->shape[1];
  std::vector<std::string> problems;
  std::set<std::string> used;
  for (auto& item : module.named_parameters()) {
    torch::Tensor& parameter = item.value();
    const std::vector<int64_t> shape = parameter.sizes().vec();
    const Rule rule = rule_for(item.key(), shape, num_heads);
    const std::string& path = rule.mapping.path;
    const FlaxArray* array = checkpoint.find(path);
    if (!array) {
      problems.push_back(fmt::format("{}: missing (expected shape {})", path, shape_text(rule.mapping.stored_shape)));
      continue;
    }
    used.insert(path);
    if (array->shape != rule.mapping.stored_shape) {
      problems.push_back(fmt::format("{}: shape {}, expected {}", path, shape_text(array->shape),
                                     shape_text(rule.mapping.stored_shape)));
      continue;
    }
    const torch::Tensor value = to_our_layout(to_tensor(*array), rule.layout, shape);
    checkpoint.discard_pages(*array);
    if (!torch::isfinite(value).all().item<bool>()) {
      problems.push_back(fmt::format("{}: holds NaN or infinity", path));
      continue;
    }
    parameter.copy_(value);
  }
  for (const auto& entry : checkpoint.arrays())
    if (!used.count(entry.first))
      problems.push_back(fmt::format("{}: unexpected (no such parameter in this architecture)", entry.first));
  if (problems.empty()) return;
  constexpr size_t kShown = 4;
  std::vector<std::string> shown(problems.begin(), problems.begin() + static_cast<std::ptrdiff_t>(std::min(kShown, problems.size())));
  std::string message = fmt::format("{}: {}", checkpoint.source(), fmt::join(shown, "; "));
  if (problems.size() > kShown) message += fmt::format("; and {} more", problems.size() - kShown);
  throw_bad_input(message);
}

}  // namespace maskgit
