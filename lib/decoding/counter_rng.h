#pragma once
// Counter-based random numbers for decoding (docs/decoding.md §8).
//
// Every number the decoder draws is a pure function of (seed, step, stream, index): no state,
// no generator object, no dependence on the batch an image is decoded in or on the device. The
// function is built from the PCG hash (Jarzynski & Olano, "Hash Functions for GPU Rendering",
// JCGT 2020), a bijection on 32-bit words, evaluated with 64-bit integer tensor ops whose
// intermediate products never exceed 2^62, so every device computes the same bits:
//
//   pcg(x)       = w ^ (w >> 22), w = ((s >> ((s >> 28) + 4)) ^ s) · 277803737 mod 2^32,
//                  s = x · 747796405 + 2891336453 mod 2^32
//   k0, k1       = low and high 32 bits of splitmix64(seed)
//   h            = pcg(step · 4 + stream)
//   A            = pcg(k0 ^ h),  C = pcg(k1 ^ pcg(A))
//   bits(i)      = pcg(pcg(A + i mod 2^32) ^ C)
//   uniform(i)   = ((bits(i) >> 9) + 1/2) / 2^23          ∈ (0, 1), exact in float32
//
// The stream key (A, C) is 64 bits wide: for one (step, stream), two images' streams coincide
// only if their seeds do; other pairs of streams share a key with probability 2^-64. On the CPU the same bits come from a plain loop (faster than ~25 tensor
// passes); tests check that both paths agree bit for bit.
#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace maskgit {

// The generator's name, recorded in PNG metadata so that a file says how its noise was drawn.
inline constexpr const char* kCounterRngName = "counter-pcg32/1";

// The PCG hash of one 32-bit word (see above).
uint32_t pcg_hash(uint32_t x);
// SplitMix64's output function (Steele et al. 2014): a bijection on 64-bit words.
uint64_t splitmix64(uint64_t x);

// Random numbers for a batch of images over a decode of `steps` steps and `streams` streams.
// The stream keys of every (step, stream, image) are computed once, on the host, and moved to
// `device` in one copy, so drawing needs no host synchronisation.
class CounterRng {
 public:
  CounterRng(const std::vector<uint64_t>& seeds, int64_t steps, int64_t streams, const torch::Device& device);

  // float32 [B, count] on the device: row b holds uniform(0..count-1) of image b's stream
  // (step, stream). Throws std::invalid_argument when step or stream is out of range or
  // count exceeds 2^32 (the constructor: unless 1 <= steps <= 2^30 and 1 <= streams <= 4).
  torch::Tensor uniform(int64_t step, int64_t stream, int64_t count) const;

  // The same through integer tensor ops only (the path non-CPU devices take); for tests.
  torch::Tensor uniform_with_tensor_ops(int64_t step, int64_t stream, int64_t count) const;

  int64_t batch() const { return batch_; }

 private:
  torch::Tensor stream_keys(int64_t step, int64_t stream) const;  // int64 [B, 2]: (A, C)

  int64_t batch_ = 0, steps_ = 0, streams_ = 0;
  torch::Tensor keys_;  // int64 [steps, streams, B, 2] on the device
};

}  // namespace maskgit
