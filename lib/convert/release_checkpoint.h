#pragma once
// From the release's Flax checkpoints to our modules (docs/model.md §4, the release's
// checkpoints and maskgit-convert).
//
// Our parameter names mirror the release's paths, so each of our parameters has exactly one
// checkpoint array, found by rule:
//   encoder.ResBlock_3.Conv_1.weight          ← encoder/ResBlock_3/Conv_1/kernel     HWIO → OIHW
//   *.GroupNorm_0.weight, *_ln.weight         ← .../scale
//   quantizer.codebook                        ← quantizer/codebook                   [K, D]
//   Embed_0.word_embeddings.weight            ← Embed_0/word_embeddings/embedding    [V, H]
//   ...self_attention.{query,key,value}.weight ← .../kernel (H, heads, head_dim) → (H, H)ᵀ
//   ...self_attention.{query,key,value}.bias  ← .../bias   (heads, head_dim) → (H)
//   ...self_attention.out.weight              ← .../kernel (heads, head_dim, H) → (H, H)ᵀ
//   other dense layers' weight                ← .../kernel (in, out) → (out, in)
//   MlmLayer_0.mlm_bias                       ← MlmLayer_0/mlm_bias/bias             [V]
// The configuration is inferred from the arrays' shapes; then every parameter of the module
// that configuration builds must have its array with the matching shape, and every array must
// be used: a missing, unexpected or mis-shaped path is an error naming it.
#include <torch/torch.h>
#include <string>
#include <vector>
#include "convert/flax_msgpack.h"
#include "tokenizer/config.h"
#include "tokenizer/vqgan.h"
#include "transformer/config.h"
#include "transformer/transformer.h"

namespace maskgit {

// The tokenizer configuration the arrays describe: channels and filters from
// encoder/Conv_0/kernel, codebook size and embedding_dim from quantizer/codebook, levels from
// the decoder's Conv_i count (Conv_0, one upsampling conv per level but the first, the output
// conv), res blocks per level from the encoder's ResBlock_i count, channel multipliers from
// each level's first ResBlock. Always the release's 32-group GroupNorm (eps 1e-6) and its
// shortcut quirk. Throws Error(bad_input) "<source>: <path>: <problem>".
TokenizerConfig infer_tokenizer_config(const FlaxCheckpoint& checkpoint);

// The transformer configuration: hidden size and vocabulary from the word embeddings, the grid
// from the position embeddings (1 + h·w rows, h = w), layers from the TransformerLayer_i count,
// heads from the query kernel, MLP width from the first intermediate kernel. `codebook_size`
// (K, the tokenizer's) splits the vocabulary: V = K + C + 1 (classes C, the mask token last;
// the release has no "no class" token). Dropout 0.1 as the release trained. Throws
// Error(bad_input) as above.
TransformerConfig infer_transformer_config(const FlaxCheckpoint& checkpoint, int64_t codebook_size);

// Copies every parameter of `module` from its checkpoint array (converted to float32 and to our
// layout). Throws Error(bad_input) naming the source and path for a missing, mis-shaped or
// non-finite array and for arrays the module has no parameter for (all such paths listed).
void load_release_parameters(torch::nn::Module& module, const FlaxCheckpoint& checkpoint);

// The checkpoint path, layout conversion and expected stored shape of one of our parameters
// (exposed for tests). `name` is our dotted name, `shape` our parameter's shape.
struct ReleaseMapping {
  std::string path;                  // "encoder/ResBlock_3/Conv_1/kernel"
  std::vector<int64_t> stored_shape; // the shape the release stores
};
ReleaseMapping release_mapping(const std::string& name, const std::vector<int64_t>& shape, int64_t num_heads);

}  // namespace maskgit
