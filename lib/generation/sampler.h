#pragma once
// Class-conditional generation: all-[MASK] grids decoded by the transformer, then turned into
// pixels by the tokenizer. Image i depends only on (seeds[i], class, settings), never on the
// batch it was decoded in.
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "decoding/decoder.h"
#include "io/json.h"
#include "tokenizer/vqgan.h"
#include "transformer/transformer.h"

namespace maskgit {

// Decodes token grids [B, N] (CPU, int64) from fully masked inputs. A class of -1 decodes
// unconditionally with the "no class" token.
torch::Tensor generate_tokens(BidirectionalTransformer& transformer, const std::vector<int64_t>& classes,
                              const std::vector<uint64_t>& seeds, const DecodeOptions& options,
                              const torch::Device& device);

// Decodes from partly known grids: `ids` [B, N] with the mask token where unknown.
// InvalidArgument("cfg_scale") for guidance (a scale other than 1) on a model without a
// "no class" token.
torch::Tensor complete_tokens(BidirectionalTransformer& transformer, const torch::Tensor& ids,
                              const std::vector<int64_t>& classes, const std::vector<uint64_t>& seeds,
                              const DecodeOptions& options, const torch::Device& device);

// Tokens decoded to pixels: images [B, C, height, width] on the CPU in [0, 1].
torch::Tensor tokens_to_images(VQTokenizer& tokenizer, const TransformerConfig& shape, const torch::Tensor& ids,
                               int64_t height, int64_t width, const torch::Device& device);

// Generates images for (classes[i], seeds[i]) in batches of `batch_size`; `on_batch(begin,
// ids, images)` sees each batch as it is finished (for writing files while generating).
using GeneratedBatchCallback =
    std::function<void(int64_t begin, const torch::Tensor& ids, const torch::Tensor& images)>;
void generate_images(BidirectionalTransformer& transformer, VQTokenizer& tokenizer, int64_t height, int64_t width,
                     const std::vector<int64_t>& classes, const std::vector<uint64_t>& seeds,
                     const DecodeOptions& options, int64_t batch_size, const torch::Device& device,
                     const GeneratedBatchCallback& on_batch);

// The class token for class c (or the "no class" token for -1); InvalidArgument("class") for a
// class out of range, or when the model has no "no class" token but one is needed.
int64_t class_token_for(const TransformerConfig& config, int64_t class_id);

// Generation settings as stored in PNG metadata and printed by --json: the decoding options,
// the random number generator's name and the forward's precision ("fp32", "bf16", "fp16").
Json decode_settings_json(const DecodeOptions& options, torch::ScalarType forward_dtype = torch::kFloat32);
// "fp32", "bf16", "fp16" (or LibTorch's name for other types).
std::string dtype_name(torch::ScalarType dtype);

}  // namespace maskgit
