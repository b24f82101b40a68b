#pragma once
// Every difference of PyTorch's c10d (the C++ core of torch.distributed) between LibTorch 1.13
// and 2.x lives here and in distributed_compat.cpp; lib/training/distributed.cpp uses only
// these. Differences absorbed:
//   - ProcessGroupGloo and ProcessGroupNCCL derive from c10d::ProcessGroup in 1.13 and from
//     c10d::Backend in 2.x: ProcessGroupHandle wraps either without naming the base class;
//   - their headers are compiled only with USE_C10D_GLOO / USE_C10D_NCCL defined, which not
//     every LibTorch's CMake files define for consumers (Debian's do): distributed_compat.cpp
//     defines them when CMake found the Gloo headers (MASKGIT_WITH_GLOO) or NCCL with CUDA
//     (MASKGIT_WITH_NCCL);
//   - 2.x's TCPStoreOptions::useLibUV (default true from 2.4): always false, since a LibTorch
//     may be built without libuv.
// This header includes c10d headers: include it from .cpp files only.
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "compat/torch_compat.h"

namespace maskgit::compat {

// Whether this build can create a ProcessGroupGloo (the Gloo headers were found) and a
// ProcessGroupNCCL (a CUDA LibTorch with ProcessGroupNCCL.hpp and nccl.h).
bool has_gloo();
bool has_nccl();

// The text of a c10::Error without its C++ backtrace, or what() of another exception; the
// "[file.cc:123] " prefix of gloo's messages removed; only the first line.
std::string exception_reason(const std::exception& error);

// A c10d::TCPStore client of the store at host:port, and its server when `is_server` (rank 0:
// listening on every interface at `port`, waiting until `world_size` clients have joined; with
// `wait_for_workers` false it does not wait: a store that only serves, as torchrun's agent
// hosts). `timeout`: connecting, the wait for the clients, and the default of every operation.
// A non-empty `prefix` wraps the store in a c10d::PrefixStore (torchrun's workers use
// "/worker/attempt_<restart count>" in the agent's store). Throws what c10d throws (c10::Error
// or a std::exception).
c10::intrusive_ptr<c10d::Store> make_tcp_store(const std::string& host, uint16_t port, bool is_server, int world_size,
                                               std::chrono::milliseconds timeout, bool wait_for_workers = true,
                                               const std::string& prefix = "");

// Which network device a ProcessGroupGloo binds to.
struct GlooDevice {
  enum class Kind { interface, hostname, default_device };
  Kind kind = Kind::default_device;
  std::string name;  // the interface (eth0) or the host name or address to bind
};

// The collectives of one c10d process group, the same calls in both LibTorch versions. Each
// returns the c10d work item; Work::wait() rethrows the transport's failure.
class ProcessGroupHandle {
 public:
  virtual ~ProcessGroupHandle() = default;
  // Sums over ranks, in place. c10d's semantics: a list of several tensors means one tensor per
  // device, all the same shape; pass one tensor.
  virtual c10::intrusive_ptr<c10d::Work> allreduce_sum(std::vector<at::Tensor>& tensors) = 0;
  virtual c10::intrusive_ptr<c10d::Work> broadcast(std::vector<at::Tensor>& tensors, int root) = 0;
  // outputs: one list of world_size tensors shaped like inputs[0].
  virtual c10::intrusive_ptr<c10d::Work> allgather(std::vector<std::vector<at::Tensor>>& outputs,
                                                   std::vector<at::Tensor>& inputs) = 0;
  virtual c10::intrusive_ptr<c10d::Work> barrier() = 0;
};

// A ProcessGroupGloo over `store` on `devices` (at least one; several: connections spread over
// them): connects to every peer (at most `timeout`); `timeout` is also every collective's. Throws
// what c10d and gloo throw; Error(failure) in a build without Gloo.
std::unique_ptr<ProcessGroupHandle> make_gloo_group(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                    std::chrono::milliseconds timeout,
                                                    const std::vector<GlooDevice>& devices);

// A ProcessGroupNCCL over `store` for CUDA device `device_index` (made the current device).
// Throws what c10d throws; Error(failure) in a build without NCCL.
std::unique_ptr<ProcessGroupHandle> make_nccl_group(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                    std::chrono::milliseconds timeout, int device_index);

}  // namespace maskgit::compat
