// make_test_model DIR [SEED]: gives the model directory DIR, whose config.json is already
// written (both a "tokenizer" and a "transformer" section), weights drawn at random from SEED
// (default 1): the layers' own initialisation, codebook entries from a unit normal so that the
// codes differ. For the command-line tests (tests/release_tools.sh), which need models of any
// structure without training one (the release's factor-16 tokenizer, no "no class" token).
#include <fmt/format.h>

#include <cstdlib>
#include <exception>
#include <string>

#include "model/model_dir.h"

int main(int argc, char** argv) {
  using namespace maskgit;
  if (argc < 2 || argc > 3) {
    fmt::print(stderr, "usage: make_test_model DIR [SEED]   (DIR/config.json with tokenizer and transformer)\n");
    return 2;
  }
  try {
    const ModelConfig config = read_model_config(argv[1]);
    if (!config.tokenizer || !config.transformer) {
      fmt::print(stderr, "make_test_model: {}: needs a tokenizer and a transformer section\n",
                 config.path_of(kModelConfigFile));
      return 3;
    }
    torch::manual_seed(argc == 3 ? std::strtoull(argv[2], nullptr, 10) : 1);
    VQTokenizer tokenizer(*config.tokenizer);
    {
      torch::NoGradGuard no_grad;
      tokenizer->quantizer->codebook.normal_();
    }
    BidirectionalTransformer transformer(*config.transformer);
    save_tokenizer_weights(config, tokenizer);
    save_transformer_weights(config, transformer);
  } catch (const std::exception& e) {
    fmt::print(stderr, "make_test_model: {}\n", e.what());
    return 1;
  }
  return 0;
}
