// c10d's process groups are declared only when USE_C10D_GLOO / USE_C10D_NCCL are defined (LibTorch
// defines them for its own build, not for consumers): defined here, in this file only, when CMake
// found what they need. ProcessGroupNCCL is used with PyTorch 2.x builds only.
#if defined(MASKGIT_WITH_GLOO) && !defined(USE_C10D_GLOO)
#define USE_C10D_GLOO 1
#endif
#if defined(MASKGIT_WITH_NCCL) && defined(MASKGIT_WITH_CUDA) && !defined(USE_C10D_NCCL)
#define USE_C10D_NCCL 1
#endif

#include "compat/distributed_compat.h"

#include <fmt/format.h>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <type_traits>
#include <utility>

#include "common/error.h"

#if defined(MASKGIT_WITH_GLOO)
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#define MASKGIT_GLOO_ENABLED 1
#endif
#if defined(MASKGIT_WITH_NCCL) && defined(MASKGIT_WITH_CUDA) && MASKGIT_TORCH_AT_LEAST(2, 0)
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#define MASKGIT_NCCL_ENABLED 1
#endif

namespace maskgit::compat {
namespace {

// TCPStoreOptions::useLibUV exists from PyTorch 2.2 (default true from 2.4); detected by its
// presence rather than by version number.
template <typename Options, typename = void>
struct HasUseLibUV : std::false_type {};
template <typename Options>
struct HasUseLibUV<Options, std::void_t<decltype(std::declval<Options&>().useLibUV)>> : std::true_type {};

template <typename Options>
void disable_libuv(Options& options) {
  if constexpr (HasUseLibUV<Options>::value) options.useLibUV = false;
}

// One process group's collectives; Group is c10d::ProcessGroupGloo or c10d::ProcessGroupNCCL,
// whose common base differs between versions (ProcessGroup in 1.13, Backend in 2.x).
template <typename Group>
class GroupHandle final : public ProcessGroupHandle {
 public:
  explicit GroupHandle(c10::intrusive_ptr<Group> group) : group_(std::move(group)) {}

  c10::intrusive_ptr<c10d::Work> allreduce_sum(std::vector<at::Tensor>& tensors) override {
    c10d::AllreduceOptions options;
    options.reduceOp = c10d::ReduceOp::SUM;
    return group_->allreduce(tensors, options);
  }

  c10::intrusive_ptr<c10d::Work> broadcast(std::vector<at::Tensor>& tensors, int root) override {
    c10d::BroadcastOptions options;
    options.rootRank = root;
    options.rootTensor = 0;
    return group_->broadcast(tensors, options);
  }

  c10::intrusive_ptr<c10d::Work> allgather(std::vector<std::vector<at::Tensor>>& outputs,
                                           std::vector<at::Tensor>& inputs) override {
    return group_->allgather(outputs, inputs, c10d::AllgatherOptions());
  }

  c10::intrusive_ptr<c10d::Work> barrier() override { return group_->barrier(c10d::BarrierOptions()); }

 private:
  c10::intrusive_ptr<Group> group_;
};

// Removes gloo's "[path/file.cc:123] " location prefixes.
std::string strip_location_prefix(std::string text) {
  while (!text.empty() && text.front() == '[') {
    const size_t close = text.find("] ");
    if (close == std::string::npos) break;
    const std::string inside = text.substr(1, close - 1);
    const bool is_location = inside.find(':') != std::string::npos &&
                             (inside.find(".cc") != std::string::npos || inside.find(".cpp") != std::string::npos ||
                              inside.find(".h") != std::string::npos);
    if (!is_location) break;
    text.erase(0, close + 2);
  }
  return text;
}

}  // namespace

bool has_gloo() {
#ifdef MASKGIT_GLOO_ENABLED
  return true;
#else
  return false;
#endif
}

bool has_nccl() {
#ifdef MASKGIT_NCCL_ENABLED
  return true;
#else
  return false;
#endif
}

std::string exception_reason(const std::exception& error) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&error);
  std::string text = c10_error != nullptr ? std::string(c10_error->what_without_backtrace()) : std::string(error.what());
  // The first non-empty line.
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(begin, end - begin);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    if (!line.empty()) return strip_location_prefix(line);
    begin = end + 1;
  }
  return "no reason given";
}

c10::intrusive_ptr<c10d::Store> make_tcp_store(const std::string& host, uint16_t port, bool is_server, int world_size,
                                               std::chrono::milliseconds timeout, bool wait_for_workers,
                                               const std::string& prefix) {
  c10d::TCPStoreOptions options;
  options.port = port;
  options.isServer = is_server;
  if (wait_for_workers) options.numWorkers = static_cast<size_t>(world_size);
  options.waitWorkers = wait_for_workers;
  options.timeout = timeout;
  options.multiTenant = false;
  disable_libuv(options);
  c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(host, options);
  if (prefix.empty()) return store;
  return c10::make_intrusive<c10d::PrefixStore>(prefix, store);
}

std::unique_ptr<ProcessGroupHandle> make_gloo_group(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                    std::chrono::milliseconds timeout,
                                                    const std::vector<GlooDevice>& devices) {
#ifdef MASKGIT_GLOO_ENABLED
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  for (const GlooDevice& device : devices) {
    switch (device.kind) {
      case GlooDevice::Kind::interface:
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(device.name));
        break;
      case GlooDevice::Kind::hostname:
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(device.name));
        break;
      case GlooDevice::Kind::default_device:
        options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
        break;
    }
  }
  if (options->devices.empty()) options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  auto group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, options);
  return std::make_unique<GroupHandle<c10d::ProcessGroupGloo>>(std::move(group));
#else
  (void)store, (void)rank, (void)size, (void)timeout, (void)devices;
  throw Error(ExitCode::failure,
              "this build has no Gloo (the gloo headers were not found when it was configured: install libgloo-dev "
              "or use a LibTorch that ships include/gloo, then reconfigure)");
#endif
}

std::unique_ptr<ProcessGroupHandle> make_nccl_group(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                    std::chrono::milliseconds timeout, int device_index) {
#ifdef MASKGIT_NCCL_ENABLED
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(device_index));
  // Work::wait() blocks the CPU and throws on a timeout or a peer's failure only in blocking
  // mode; otherwise a lost peer would surface as NCCL's watchdog aborting the process. Set
  // unless the user chose (the variable's name changed in 2.2).
  ::setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 0);
  ::setenv("NCCL_BLOCKING_WAIT", "1", 0);
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  auto group = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, options);
  return std::make_unique<GroupHandle<c10d::ProcessGroupNCCL>>(std::move(group));
#else
  (void)store, (void)rank, (void)size, (void)timeout, (void)device_index;
  throw Error(ExitCode::failure,
              fmt::format("this build has no NCCL (LibTorch {} without CUDA, ProcessGroupNCCL.hpp or nccl.h when it "
                          "was configured)",
                          torch_version()));
#endif
}

}  // namespace maskgit::compat
