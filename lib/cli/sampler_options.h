#pragma once
// Sampler flags shared by maskgit-sample and the editing tools, defined once.
#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <string>

#include "decoding/decoder.h"

namespace maskgit {

struct SamplerCliOptions {
  int64_t steps = 8;
  int64_t start_step = 0;
  std::string schedule = "cosine";
  double choice_temperature = 4.5;
  double temperature = 1.0;
  int64_t top_k = 0;
  double cfg_scale = 1.0;
  std::string order = "confidence";
  std::string dtype = "auto";
};

// --steps, --start-step, --schedule, --choice-temperature, --temperature, --top-k,
// --cfg-scale, --order, --dtype; the values in `options` are the defaults shown in --help.
void add_sampler_options(CLI::App& app, SamplerCliOptions& options);
// --dtype alone (for tools without the other sampler options, such as the benchmark).
void add_dtype_option(CLI::App& app, std::string& dtype);
// Validates the combination; Error(usage) naming the flag.
DecodeOptions to_decode_options(const SamplerCliOptions& options);
// --dtype resolved for `device`: auto is bfloat16 on CUDA GPUs with native bf16 (compute
// capability 8.0 on) and float32 elsewhere; fp16 needs CUDA (LibTorch's CPU kernels lack it).
// Error(usage) naming --dtype otherwise.
torch::ScalarType forward_dtype(const SamplerCliOptions& options, const torch::Device& device);

}  // namespace maskgit
