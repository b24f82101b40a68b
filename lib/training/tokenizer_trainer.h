#pragma once
// Stage 1 training: the VQ tokenizer on an image dataset, as a stage of the training engine
// (engine.h). The loss is the reconstruction MSE plus the codebook and commitment terms of
// docs/model.md §2.7, and optionally the VQGAN family's refinements (docs/training.md §4):
//   - a perceptual-style feature loss through a frozen network the project trained for it
//     (lib/tokenizer/perceptual.h; never the evaluation classifier);
//   - a patch discriminator (lib/tokenizer/discriminator.h) trained with the non-saturating GAN
//     loss and an R1 penalty, from `adversarial_start` on, with its own AdamW (β = (0, 0.99),
//     docs/model.md §2.7) checkpointed beside the tokenizer's; the generator's adversarial term
//     is weighted by `adversarial_weight` × VQGAN's adaptive weight (the ratio of the gradient
//     norms of the other losses and of the adversarial one at the decoder's last kernel,
//     computed on the whole global batch's gradients).
// Codebook collapse is guarded against twice: the codebook starts from encoder outputs of the
// first global batch, and codes unused over a window of steps (counted over every rank) are
// restarted on encoder outputs of the current global batch. A run may start from a trained
// tokenizer (`init_from`) and train its decoder alone (`decoder_only`): the encoder and codebook
// stay frozen, so token grids, and any transformer trained on them, stay valid.
#include <torch/torch.h>

#include <string>

#include "tokenizer/config.h"
#include "tokenizer/discriminator.h"
#include "training/engine.h"

namespace maskgit {

struct TokenizerTrainOptions : TrainingRunOptions {
  TokenizerTrainOptions();
  std::string model_dir;  // receives config.json + tokenizer.safetensors at every checkpoint
  TokenizerConfig config;
  double codebook_weight = 1.0;
  double commitment_weight = 0.25;
  int64_t dead_code_window = 100;  // 0 disables restarts (and decoder_only does)

  // Perceptual loss: a classifier directory (lib/eval/classifier.h) trained for the purpose;
  // empty = none.
  std::string perceptual_model;
  double perceptual_weight = 1.0;  // used when perceptual_model is set
  // Adversarial loss: 0 = none (no discriminator).
  double adversarial_weight = 0.0;
  int64_t adversarial_start = 0;    // steps done before the discriminator and its term start (the
                                    // progress line's step adversarial_start + 1 is the first with them)
  double discriminator_lr = 1e-4;   // constant
  double r1_weight = 1.0;           // γ: the discriminator's loss adds γ/2 · R1
  DiscriminatorConfig discriminator;
  // Start from this model directory's tokenizer (its architecture replaces `config`); empty =
  // fresh initialisation.
  std::string init_from;
  bool decoder_only = false;  // needs init_from: only the decoder is trained

  bool adversarial() const { return adversarial_weight > 0; }

  std::string state_path() const;  // <model_dir>/train-state/tokenizer.safetensors
  std::string resolved_metrics_path() const;
};

struct TokenizerTrainResult : TrainingRunResult {
  double last_psnr = 0;    // of the reconstructions over the last logging window
  int64_t codes_used = 0;  // over the last dead-code window
};

// Throws what run_training throws.
TokenizerTrainResult train_tokenizer(const TokenizerTrainOptions& options);

}  // namespace maskgit
