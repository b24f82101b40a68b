#pragma once
// Data-parallel training across processes on PyTorch's own c10d: a TCPStore for the rendezvous
// and ProcessGroupGloo (CPU) or ProcessGroupNCCL (CUDA, PyTorch 2.x builds) for the collectives.
// Every rank runs the same program and calls the same operations in the same order. A group of
// one process (DataParallelGroup::single()) makes every operation a no-op, so trainers always go
// through a group. No c10d or gloo header is included here (the implementation is behind a
// pointer): including this header costs no more than <torch/torch.h>.
//
// Failures are reported, never hung on: a rank that dies (its connections close), is killed, or
// does not answer within DistributedOptions::timeout makes the collective fail on the others with
// one Error(failure) naming this rank, the operation and the transport's reason.
#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace maskgit {

// What a launcher (torchrun, or maskgit-train --nproc) tells one rank through the environment.
struct LaunchEnvironment {
  int rank = 0, world_size = 1, local_rank = 0, local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  bool launched = false;  // WORLD_SIZE was set
  // torchrun's agent hosts the store at MASTER_ADDR:MASTER_PORT itself
  // (TORCHELASTIC_USE_AGENT_STORE=True): every rank joins it as a client, under the prefix
  // "/worker/attempt_<TORCHELASTIC_RESTART_COUNT>", as torch.distributed does.
  bool agent_store = false;
  int restart_count = 0;
};

// Reads RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT (torchrun's
// names). Without WORLD_SIZE: one process (launched = false; the other variables are ignored).
// With WORLD_SIZE: RANK, MASTER_ADDR and MASTER_PORT are required; LOCAL_RANK defaults to RANK
// and LOCAL_WORLD_SIZE to WORLD_SIZE. Values are strict decimal integers (no sign, spaces or
// suffix) in range: 1 <= WORLD_SIZE <= 65536, 0 <= RANK < WORLD_SIZE, 1 <= LOCAL_WORLD_SIZE <=
// WORLD_SIZE, 0 <= LOCAL_RANK < LOCAL_WORLD_SIZE, 1 <= MASTER_PORT <= 65535; MASTER_ADDR is a
// non-empty host name or address without spaces; TORCHELASTIC_USE_AGENT_STORE is "True" or
// anything else (off), TORCHELASTIC_RESTART_COUNT an integer >= 0 (default 0). Throws InvalidArgument("<VARIABLE>", why), e.g.
// InvalidArgument("RANK", "is 3, at least WORLD_SIZE (2)"), for anything wrong.
LaunchEnvironment read_launch_environment();

struct DistributedOptions {
  // "gloo", "nccl", or "auto": NCCL for a CUDA device when this build has it, else Gloo.
  std::string backend = "auto";
  // The rendezvous (every rank reaching the store and its peers) and every collective.
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
};

class DataParallelGroup;

// Rank 0's `value` (any shape and dtype DataParallelGroup::broadcast takes; ignored on the other
// ranks, which may pass an undefined tensor) on every rank, on the CPU: its dtype and shape are
// sent first. A group of one returns `value`. Error(failure) as broadcast.
torch::Tensor broadcast_from_main(DataParallelGroup& group, const torch::Tensor& value);

// One process group for data-parallel training. Not thread-safe: one thread calls its
// operations, in the same order on every rank. After a failed operation the group is broken:
// every later operation throws Error(failure) at once.
class DataParallelGroup {
 public:
  // A group of this process alone: rank 0 of 1, backend "none"; every operation is a no-op
  // (all_gather returns a copy of its input); no c10d object exists.
  static std::unique_ptr<DataParallelGroup> single();

  // Joins the group that `env` describes. The backend is checked first: InvalidArgument("backend")
  // for a name other than gloo/nccl/auto, for "nccl" without a CUDA `device` or in a build
  // without NCCL, and for Gloo in a build without the Gloo headers. env.world_size 1 gives
  // single(). Otherwise rank 0 hosts a c10d::TCPStore at MASTER_ADDR:MASTER_PORT and every rank
  // connects to it, then the process group connects its peers: ProcessGroupGloo on the CPU (its
  // network device: the interface GLOO_SOCKET_IFNAME names when set; else, when MASTER_ADDR
  // resolves to a loopback address, that address; else gloo's default device, this host name's
  // address), ProcessGroupNCCL for a CUDA `device` (whose index becomes the current device).
  // Waits at most options.timeout for the other ranks; throws Error(failure) naming this rank,
  // the address and the reason, e.g. "rank 1 of 2: cannot reach the rendezvous at
  // 127.0.0.1:29500 within 600 s (...)".
  static std::unique_ptr<DataParallelGroup> connect(const LaunchEnvironment& env, const torch::Device& device,
                                                    const DistributedOptions& options);

  ~DataParallelGroup();
  DataParallelGroup(const DataParallelGroup&) = delete;
  DataParallelGroup& operator=(const DataParallelGroup&) = delete;

  int rank() const;
  int world_size() const;
  bool is_main() const { return rank() == 0; }  // rank 0
  std::string backend_name() const;              // "none", "gloo", "nccl"
  torch::Device device() const;                  // where the tensors of the collectives live

  // Sums `tensors` over ranks, in place. float32, float64 or int64 tensors of any shapes (the same
  // list of shapes and dtypes on every rank), dense, on the group's device; non-contiguous ones
  // are reduced through a contiguous copy. Error(failure) for another dtype or device, or when
  // the collective fails (see the class comment).
  void all_reduce_sum(std::vector<torch::Tensor>& tensors);

  // Replaces the gradients of `parameters` (every rank passes the same parameters in the same
  // order) by their mean over ranks. Gradients are packed into flat buckets of at most
  // `bucket_bytes` bytes (one dtype and device per bucket; a gradient larger than that gets a
  // bucket of its own); every bucket's all-reduce is started at once, then all are waited on and
  // copied back. A parameter whose grad is undefined first gets a zero grad, so that every rank
  // reduces the same layout. Gradients must be dense floating-point tensors on the group's
  // device; Error(failure) otherwise or when a collective fails. bucket_bytes must be >= 1.
  void average_gradients(const std::vector<torch::Tensor>& parameters, int64_t bucket_bytes = 25 << 20);

  // Copies rank `root`'s values of `tensors` into every rank's `tensors`, in place (same shapes
  // and dtypes on every rank; the dtypes of all_reduce_sum plus bool, uint8, int32, float16 and
  // bfloat16). Error(failure) for a bad root or a failed collective.
  void broadcast(std::vector<torch::Tensor>& tensors, int root = 0);

  // Every rank's `local` (same shape and dtype on every rank) concatenated along dim 0 in rank
  // order: shape [world_size * local.size(0), ...]; a 0-dim `local` gives shape [world_size].
  torch::Tensor all_gather(const torch::Tensor& local);

  // Returns once every rank has called barrier().
  void barrier();

  // Rank 0 runs `work` (building a cache file, say) while the other ranks wait for it. The wait
  // goes through the store, without the collective timeout (work may take long; the other ranks
  // give up after 7 days), but ends at once when rank 0 dies (the store it hosts closes; under
  // torchrun's agent store, the agent ends the other ranks when one dies). When
  // `work` throws on rank 0 the exception propagates there, and the other ranks throw AlreadyReported(<rank 0's exit code>, "rank R of N: rank 0 failed while
  // <what>: <its message>") (rank 0 reports it; a tool prints nothing more);
  // when rank 0 dies they throw Error(failure, "rank R of N: rank 0 stopped while <what> (...)").
  // Single group: runs `work`.
  void run_on_main(const std::string& what, const std::function<void()>& work);

 private:
  class Impl;
  explicit DataParallelGroup(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace maskgit
