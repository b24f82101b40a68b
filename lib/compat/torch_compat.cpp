#include "compat/torch_compat.h"

#include <ATen/CPUGeneratorImpl.h>

#if __has_include(<ATen/cuda/CUDAGeneratorImpl.h>) && (defined(USE_CUDA) || defined(MASKGIT_WITH_CUDA))
#include <ATen/cuda/CUDAGeneratorImpl.h>
#define MASKGIT_HAS_CUDA_GENERATOR 1
#endif
#if __has_include(<ATen/cuda/CUDAContext.h>) && (defined(USE_CUDA) || defined(MASKGIT_WITH_CUDA))
#include <ATen/cuda/CUDAContext.h>
#define MASKGIT_HAS_CUDA_CONTEXT 1
#endif

namespace maskgit::compat {

bool has_fast_bf16(const torch::Device& device) {
#ifdef MASKGIT_HAS_CUDA_CONTEXT
  if (device.is_cuda()) {
    const int index = device.has_index() ? device.index() : at::cuda::current_device();
    return at::cuda::getDeviceProperties(index)->major >= 8;
  }
#endif
  (void)device;
  return false;
}

at::Generator make_generator(const torch::Device& device, uint64_t seed) {
#ifdef MASKGIT_HAS_CUDA_GENERATOR
  if (device.is_cuda()) {
    auto generator = at::make_generator<at::CUDAGeneratorImpl>(device.index() < 0 ? 0 : device.index());
    generator.set_current_seed(seed);
    return generator;
  }
#endif
  (void)device;
  return make_cpu_generator(seed);
}

}  // namespace maskgit::compat
