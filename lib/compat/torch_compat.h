#pragma once
// Every LibTorch version difference lives here. The project builds against Debian's
// libtorch-dev 1.13 (CPU) and PyTorch 2.x libtorch (CUDA). Call sites use these helpers and
// never test TORCH_VERSION_* themselves.
#include <torch/torch.h>
#include <torch/version.h>
#include <ATen/CPUGeneratorImpl.h>

#define MASKGIT_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||          \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

// torch::scaled_dot_product_attention (fused kernels) arrived in 2.0.
#define MASKGIT_HAS_FUSED_SDPA MASKGIT_TORCH_AT_LEAST(2, 0)

namespace maskgit::compat {

inline const char* torch_version() { return TORCH_VERSION; }

// A CPU generator seeded explicitly (the factory's spelling changed between versions).
inline at::Generator make_cpu_generator(uint64_t seed) {
  return at::make_generator<at::CPUGeneratorImpl>(seed);
}

// Fused scaled-dot-product attention (2.x) or the caller's plain fallback (1.13).
template <typename Fallback>
torch::Tensor fused_attention_or(const torch::Tensor& query, const torch::Tensor& key, const torch::Tensor& value,
                                 double dropout, Fallback&& fallback) {
#if MASKGIT_HAS_FUSED_SDPA
  (void)fallback;
  return at::scaled_dot_product_attention(query, key, value, /*attn_mask=*/{}, dropout);
#else
  (void)query, (void)key, (void)value, (void)dropout;
  return fallback();
#endif
}

// GELU with the tanh approximation (SPEC.md section 3).
inline torch::Tensor gelu_tanh(const torch::Tensor& x) { return torch::gelu(x, "tanh"); }

// A generator on `device` seeded explicitly; CUDA generators only when CUDA is compiled in.
at::Generator make_generator(const torch::Device& device, uint64_t seed);

}  // namespace maskgit::compat
