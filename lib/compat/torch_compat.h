#pragma once
// Every LibTorch version difference lives here. The project builds against Debian's
// libtorch-dev 1.13 (CPU) and PyTorch 2.x libtorch (CUDA). Call sites use these helpers and
// never test TORCH_VERSION_* themselves.
#include <torch/torch.h>
#include <torch/version.h>
#include <ATen/CPUGeneratorImpl.h>

#include <sstream>
#include <string>
#include <type_traits>

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

// GELU with the tanh approximation (the release's BERT layers): 0.5·x·(1 + tanh(z)) with
// z = √(2/π)(x + 0.044715x³). On the CPU it is computed as x·sigmoid(2z), the same function:
// LibTorch 1.13's tanh-GELU kernel is not vectorised and took 3.2 ms on [64, 50, 768] where
// this takes 1.7 ms (2 threads). Elsewhere (CUDA, and bf16 whose rounding at every step would
// cost accuracy) LibTorch's own kernel is used.
inline torch::Tensor gelu_tanh(const torch::Tensor& x) {
  if (!x.is_cpu() || x.scalar_type() != torch::kFloat32) return torch::gelu(x, "tanh");
  constexpr double two_sqrt_2_over_pi = 1.5957691216057308;
  torch::Tensor gate = x.square();
  gate.mul_(0.044715 * two_sqrt_2_over_pi).add_(two_sqrt_2_over_pi).mul_(x).sigmoid_();
  // Autograd needs the sigmoid's output for its backward pass: multiply in place only without it.
  return torch::GradMode::is_enabled() ? gate.mul(x) : gate.mul_(x);
}

// Whether `device` is a CUDA GPU with native bf16 arithmetic (compute capability 8.0 or later);
// false on the CPU and in builds without CUDA.
bool has_fast_bf16(const torch::Device& device);

// A generator on `device` seeded explicitly; CUDA generators only when CUDA is compiled in.
at::Generator make_generator(const torch::Device& device, uint64_t seed);

}  // namespace maskgit::compat

namespace maskgit::compat {

// The key of `parameter` in torch::optim::Optimizer::state(): LibTorch 1.13 keys the map by
// the TensorImpl's address printed as text, later versions by the address itself. Call with
// the optimizer's state map so that the key type is the map's own.
template <typename StateMap>
typename StateMap::key_type optimizer_state_key(const StateMap& /*state*/, const torch::Tensor& parameter) {
  using Key = typename StateMap::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream text;
    text << parameter.unsafeGetTensorImpl();
    return text.str();
  } else {
    return static_cast<Key>(parameter.unsafeGetTensorImpl());
  }
}

}  // namespace maskgit::compat
