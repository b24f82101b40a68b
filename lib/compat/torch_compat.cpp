#include "compat/torch_compat.h"

#include <ATen/CPUGeneratorImpl.h>

#if __has_include(<ATen/cuda/CUDAGeneratorImpl.h>) && defined(USE_CUDA)
#include <ATen/cuda/CUDAGeneratorImpl.h>
#define MASKGIT_HAS_CUDA_GENERATOR 1
#endif

namespace maskgit::compat {

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
