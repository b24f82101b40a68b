#include "training/distributed.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <fmt/format.h>

#include <csignal>

#include <cctype>
#include <cstdlib>
#include <map>
#include <optional>
#include <utility>

#include "common/error.h"
#include "compat/distributed_compat.h"

namespace maskgit {
namespace {

// ---- The launcher's environment -------------------------------------------------------------

std::optional<std::string> environment_value(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

// A strict non-negative decimal integer (digits only, at most 9 of them); InvalidArgument(name).
int parse_environment_integer(const char* name, const std::string& text) {
  if (text.empty()) throw InvalidArgument(name, "is set but empty");
  for (const char c : text)
    if (!std::isdigit(static_cast<unsigned char>(c)))
      throw InvalidArgument(name, fmt::format("is '{}', not a non-negative decimal integer", text));
  if (text.size() > 9) throw InvalidArgument(name, fmt::format("is {}, far too large", text));
  return std::stoi(text);
}

std::string seconds_text(std::chrono::milliseconds duration) {
  return fmt::format("{:g}", static_cast<double>(duration.count()) / 1000.0);
}

// The numeric loopback address that `host` resolves to when every address it resolves to is a
// loopback one (127.0.0.0/8, ::1), IPv4 preferred; nothing otherwise or when it does not resolve.
std::optional<std::string> loopback_address_of(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* results = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &results) != 0 || results == nullptr) return std::nullopt;
  std::optional<std::string> ipv4, ipv6;
  bool all_loopback = true;
  for (const addrinfo* entry = results; entry != nullptr; entry = entry->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    if (entry->ai_family == AF_INET) {
      const auto* address = reinterpret_cast<const sockaddr_in*>(entry->ai_addr);
      if ((ntohl(address->sin_addr.s_addr) >> 24) != 127) all_loopback = false;
      else if (!ipv4 && inet_ntop(AF_INET, &address->sin_addr, text, sizeof text) != nullptr) ipv4 = text;
    } else if (entry->ai_family == AF_INET6) {
      const auto* address = reinterpret_cast<const sockaddr_in6*>(entry->ai_addr);
      if (!IN6_IS_ADDR_LOOPBACK(&address->sin6_addr)) all_loopback = false;
      else if (!ipv6 && inet_ntop(AF_INET6, &address->sin6_addr, text, sizeof text) != nullptr) ipv6 = text;
    } else {
      all_loopback = false;
    }
  }
  freeaddrinfo(results);
  if (!all_loopback) return std::nullopt;
  return ipv4 ? ipv4 : ipv6;
}

// GLOO_SOCKET_IFNAME (a comma-separated list of interfaces, as PyTorch reads it), else MASTER_ADDR's
// loopback address, else gloo's default device.
std::vector<compat::GlooDevice> gloo_devices_for(const std::string& master_addr) {
  std::vector<compat::GlooDevice> devices;
  if (const auto interfaces = environment_value("GLOO_SOCKET_IFNAME"); interfaces && !interfaces->empty()) {
    size_t begin = 0;
    while (begin <= interfaces->size()) {
      size_t end = interfaces->find(',', begin);
      if (end == std::string::npos) end = interfaces->size();
      if (end > begin)
        devices.push_back({compat::GlooDevice::Kind::interface, interfaces->substr(begin, end - begin)});
      begin = end + 1;
    }
    if (!devices.empty()) return devices;
  }
  if (const auto loopback = loopback_address_of(master_addr))
    return {{compat::GlooDevice::Kind::hostname, *loopback}};
  return {{compat::GlooDevice::Kind::default_device, std::string()}};
}

bool looks_like_timeout(const std::string& reason) {
  for (const char* marker : {"Timed out", "timed out", "Timeout", "timeout"})
    if (reason.find(marker) != std::string::npos) return true;
  return false;
}

// The dtype a tensor travels as in a copy (broadcast, all_gather): gloo has no bool or bfloat16,
// so those go bit for bit as uint8 and float16 (same element sizes).
c10::ScalarType wire_dtype(c10::ScalarType dtype) {
  if (dtype == torch::kBool) return torch::kUInt8;
  if (dtype == torch::kBFloat16) return torch::kFloat16;
  return dtype;
}

torch::Tensor as_wire(const torch::Tensor& tensor) {
  const auto wire = wire_dtype(tensor.scalar_type());
  return wire == tensor.scalar_type() ? tensor : tensor.view(wire);
}

// How long the other ranks wait for rank 0's run_on_main work: a week, in effect no limit (it
// fits the int milliseconds that 2.x's TCPStore polls with).
constexpr std::chrono::hours kRunOnMainWait{24 * 7};

// Bytes a bucket may hold when an operation has no limit of its own.
constexpr int64_t kUnlimitedBucketBytes = int64_t{1} << 62;

}  // namespace

LaunchEnvironment read_launch_environment() {
  LaunchEnvironment env;
  const auto world_size = environment_value("WORLD_SIZE");
  if (!world_size) return env;
  env.launched = true;
  env.world_size = parse_environment_integer("WORLD_SIZE", *world_size);
  if (env.world_size < 1) throw InvalidArgument("WORLD_SIZE", fmt::format("is {}, must be at least 1", env.world_size));
  if (env.world_size > 65536)
    throw InvalidArgument("WORLD_SIZE", fmt::format("is {}, more than 65536", env.world_size));

  const auto rank = environment_value("RANK");
  if (!rank) throw InvalidArgument("RANK", "is not set (with WORLD_SIZE set, RANK, MASTER_ADDR and MASTER_PORT must be)");
  env.rank = parse_environment_integer("RANK", *rank);
  if (env.rank >= env.world_size)
    throw InvalidArgument("RANK", fmt::format("is {}, at least WORLD_SIZE ({})", env.rank, env.world_size));

  const auto local_world_size = environment_value("LOCAL_WORLD_SIZE");
  env.local_world_size =
      local_world_size ? parse_environment_integer("LOCAL_WORLD_SIZE", *local_world_size) : env.world_size;
  if (env.local_world_size < 1)
    throw InvalidArgument("LOCAL_WORLD_SIZE", fmt::format("is {}, must be at least 1", env.local_world_size));
  if (env.local_world_size > env.world_size)
    throw InvalidArgument("LOCAL_WORLD_SIZE",
                          fmt::format("is {}, more than WORLD_SIZE ({})", env.local_world_size, env.world_size));

  const auto local_rank = environment_value("LOCAL_RANK");
  env.local_rank = local_rank ? parse_environment_integer("LOCAL_RANK", *local_rank) : env.rank;
  if (env.local_rank >= env.local_world_size)
    throw InvalidArgument("LOCAL_RANK", fmt::format("is {}, at least LOCAL_WORLD_SIZE ({}){}", env.local_rank,
                                                    env.local_world_size,
                                                    local_rank ? "" : " (LOCAL_RANK is not set: RANK stands for it)"));

  const auto master_addr = environment_value("MASTER_ADDR");
  if (!master_addr)
    throw InvalidArgument("MASTER_ADDR", "is not set (with WORLD_SIZE set, RANK, MASTER_ADDR and MASTER_PORT must be)");
  if (master_addr->empty()) throw InvalidArgument("MASTER_ADDR", "is set but empty");
  for (const char c : *master_addr)
    if (std::isspace(static_cast<unsigned char>(c)) || std::iscntrl(static_cast<unsigned char>(c)))
      throw InvalidArgument("MASTER_ADDR", fmt::format("is '{}', not a host name or address", *master_addr));
  env.master_addr = *master_addr;

  const auto master_port = environment_value("MASTER_PORT");
  if (!master_port)
    throw InvalidArgument("MASTER_PORT", "is not set (with WORLD_SIZE set, RANK, MASTER_ADDR and MASTER_PORT must be)");
  env.master_port = parse_environment_integer("MASTER_PORT", *master_port);
  if (env.master_port < 1 || env.master_port > 65535)
    throw InvalidArgument("MASTER_PORT", fmt::format("is {}, not a port (1 to 65535)", env.master_port));

  // torch.distributed's rule: the agent's store is used when the variable is exactly "True".
  const auto agent_store = environment_value("TORCHELASTIC_USE_AGENT_STORE");
  env.agent_store = agent_store && *agent_store == "True";
  const auto restart_count = environment_value("TORCHELASTIC_RESTART_COUNT");
  if (env.agent_store && restart_count)
    env.restart_count = parse_environment_integer("TORCHELASTIC_RESTART_COUNT", *restart_count);
  return env;
}

// ---- The group --------------------------------------------------------------------------------

class DataParallelGroup::Impl {
 public:
  int rank = 0;
  int world_size = 1;
  std::string backend = "none";
  torch::Device device = torch::kCPU;
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
  std::string rendezvous;  // MASTER_ADDR:MASTER_PORT
  // Declared before the process group, which uses it, so that it is destroyed after it.
  c10::intrusive_ptr<c10d::Store> store;
  std::unique_ptr<compat::ProcessGroupHandle> group;
  std::string broken;  // the message of the failure that broke the group; empty while usable
  int64_t run_on_main_calls = 0;

  bool is_single() const { return group == nullptr; }

  std::string who() const { return fmt::format("rank {} of {}", rank, world_size); }

  void check_usable(const std::string& operation) const {
    if (!broken.empty())
      throw Error(ExitCode::failure,
                  fmt::format("{}: {}: the process group is unusable after an earlier failure ({})", who(), operation,
                              broken));
  }

  [[noreturn]] void fail_collective(const std::string& operation, const std::string& reason) {
    const std::string message =
        looks_like_timeout(reason)
            ? fmt::format("{}: {} failed: another rank did not answer within the timeout of {} s (it hung or "
                          "stopped) ({}: {})",
                          who(), operation, seconds_text(timeout), backend, reason)
            : fmt::format("{}: {} failed: another rank stopped (it died, was killed, or did not answer within the "
                          "timeout of {} s) ({}: {})",
                          who(), operation, seconds_text(timeout), backend, reason);
    broken = message;
    throw Error(ExitCode::failure, message);
  }

  // An operation c10d refused to start here (not a peer's failure); the ranks may be out of step
  // now, so the group is broken too.
  [[noreturn]] void fail_to_start(const std::string& operation, const std::string& reason) {
    const std::string message = fmt::format("{}: {} could not start ({}: {})", who(), operation, backend, reason);
    broken = message;
    throw Error(ExitCode::failure, message);
  }

  // Waits for every work item (all of them, even after one failed: they fail fast once a peer is
  // gone), then throws the first failure.
  void wait_all(const std::string& operation, std::vector<c10::intrusive_ptr<c10d::Work>>& works) {
    // A safety net only: gloo's own timeout (per receive) ends a wait on a silent peer long before.
    const auto safety = timeout * 2 + std::chrono::seconds(60);
    std::optional<std::string> failure;
    for (auto& work : works) {
      try {
        work->wait(safety);
      } catch (const std::exception& error) {
        if (!failure) failure = compat::exception_reason(error);
      }
    }
    works.clear();
    if (failure) fail_collective(operation, *failure);
  }

  void check_tensor(const std::string& operation, const torch::Tensor& tensor, bool any_dtype) const {
    if (!tensor.defined()) throw Error(ExitCode::failure, fmt::format("{}: {}: an undefined tensor", who(), operation));
    if (tensor.layout() != torch::kStrided)
      throw Error(ExitCode::failure, fmt::format("{}: {}: a sparse tensor (only dense ones)", who(), operation));
    if (tensor.device() != device)
      throw Error(ExitCode::failure, fmt::format("{}: {}: a tensor on {}, not on the group's device {}", who(),
                                                 operation, tensor.device().str(), device.str()));
    const auto dtype = tensor.scalar_type();
    const bool reducible = dtype == torch::kFloat32 || dtype == torch::kFloat64 || dtype == torch::kInt64;
    const bool copyable = reducible || dtype == torch::kBool || dtype == torch::kUInt8 || dtype == torch::kInt8 ||
                          dtype == torch::kInt32 || dtype == torch::kFloat16 || dtype == torch::kBFloat16;
    if (!(any_dtype ? copyable : reducible))
      throw Error(ExitCode::failure,
                  fmt::format("{}: {}: a tensor of dtype {}, which it does not support", who(), operation,
                              c10::toString(dtype)));
  }

  // Runs `launch` on flat buckets of `tensors` (one dtype per bucket, at most `bucket_bytes` unless
  // one tensor is larger), all launched before any is waited on; then `finish` on each flat
  // bucket and the results copied back into `tensors`.
  void run_in_buckets(const std::string& operation, const std::vector<torch::Tensor>& tensors, int64_t bucket_bytes,
                      const std::function<c10::intrusive_ptr<c10d::Work>(std::vector<at::Tensor>&)>& launch,
                      const std::function<void(torch::Tensor&)>& finish) {
    struct Bucket {
      std::vector<size_t> members;
      int64_t bytes = 0;
      std::vector<at::Tensor> flat;  // one tensor: what the collective reads and writes
      bool aliases = false;          // flat[0] is a view of the single member
    };
    std::vector<Bucket> buckets;
    std::map<c10::ScalarType, size_t> open;  // dtype -> the bucket being filled
    for (size_t i = 0; i < tensors.size(); ++i) {
      const torch::Tensor& tensor = tensors[i];
      if (tensor.numel() == 0) continue;
      const int64_t bytes = tensor.numel() * static_cast<int64_t>(tensor.element_size());
      const auto found = open.find(tensor.scalar_type());
      if (found == open.end() || buckets[found->second].bytes + bytes > bucket_bytes) {
        open[tensor.scalar_type()] = buckets.size();
        buckets.emplace_back();
      }
      Bucket& bucket = buckets[open[tensor.scalar_type()]];
      bucket.members.push_back(i);
      bucket.bytes += bytes;
    }

    torch::NoGradGuard no_grad;
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    try {
      for (Bucket& bucket : buckets) {
        const torch::Tensor& first = tensors[bucket.members.front()];
        if (bucket.members.size() == 1 && first.is_contiguous()) {
          bucket.flat = {as_wire(first).view({-1})};
          bucket.aliases = true;
        } else {
          std::vector<torch::Tensor> pieces;
          pieces.reserve(bucket.members.size());
          for (const size_t i : bucket.members) pieces.push_back(tensors[i].reshape({-1}));
          bucket.flat = {as_wire(torch::cat(pieces))};
        }
        works.push_back(launch(bucket.flat));
      }
    } catch (const std::exception& error) {
      const std::string reason = compat::exception_reason(error);
      try {
        wait_all(operation, works);
      } catch (const Error&) {
      }
      fail_to_start(operation, reason);
    }
    wait_all(operation, works);

    for (Bucket& bucket : buckets) {
      torch::Tensor& flat = bucket.flat.front();
      finish(flat);
      if (bucket.aliases) continue;
      int64_t offset = 0;
      for (const size_t i : bucket.members) {
        torch::Tensor target = tensors[i];
        const int64_t count = target.numel();
        target.copy_(flat.narrow(0, offset, count).view(target.scalar_type()).view(target.sizes()));
        offset += count;
      }
    }
  }
};

DataParallelGroup::DataParallelGroup(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

DataParallelGroup::~DataParallelGroup() = default;

std::unique_ptr<DataParallelGroup> DataParallelGroup::single() {
  return std::unique_ptr<DataParallelGroup>(new DataParallelGroup(std::make_unique<Impl>()));
}

std::unique_ptr<DataParallelGroup> DataParallelGroup::connect(const LaunchEnvironment& env, const torch::Device& device,
                                                              const DistributedOptions& options) {
  std::string backend = options.backend;
  if (backend == "auto") {
    backend = device.is_cuda() && compat::has_nccl() ? "nccl" : "gloo";
    if (backend == "gloo" && !compat::has_gloo())
      throw InvalidArgument("backend",
                            fmt::format("auto: no backend for {}: this build has no Gloo (its headers were not found "
                                        "when it was configured){}",
                                        device.str(), device.is_cuda() ? " and no NCCL" : ""));
  } else if (backend == "gloo") {
    if (!compat::has_gloo())
      throw InvalidArgument("backend",
                            "gloo: this build has no Gloo (its headers were not found when it was configured: install "
                            "libgloo-dev, or use a LibTorch that ships include/gloo, and reconfigure)");
  } else if (backend == "nccl") {
    if (!device.is_cuda())
      throw InvalidArgument("backend", fmt::format("nccl: needs a CUDA device, not {}", device.str()));
    if (!compat::has_nccl())
      throw InvalidArgument("backend", "nccl: this build has no NCCL (a PyTorch 2.x LibTorch with CUDA and nccl.h)");
  } else {
    throw InvalidArgument("backend", fmt::format("'{}' is not one of gloo, nccl, auto", options.backend));
  }
  if (options.timeout.count() <= 0)
    throw InvalidArgument("timeout", fmt::format("is {} ms, must be positive", options.timeout.count()));
  if (env.world_size < 1 || env.rank < 0 || env.rank >= env.world_size)
    throw Error(ExitCode::failure, fmt::format("rank {} of {}: not a rank of that group", env.rank, env.world_size));
  if (env.master_port < 1 || env.master_port > 65535)
    throw Error(ExitCode::failure, fmt::format("MASTER_PORT {} is not a port (1 to 65535)", env.master_port));

  auto impl = std::make_unique<Impl>();
  if (env.world_size > 1) {
    // A write to a peer that just died raises SIGPIPE, which would kill this rank silently
    // (status 141) instead of letting gloo report the closed connection as an error.
    ::signal(SIGPIPE, SIG_IGN);
  }
  if (env.world_size == 1) {
    impl->device = device;
    return std::unique_ptr<DataParallelGroup>(new DataParallelGroup(std::move(impl)));
  }
  impl->rank = env.rank;
  impl->world_size = env.world_size;
  impl->backend = backend;
  impl->device = device;
  impl->timeout = options.timeout;
  impl->rendezvous = env.master_addr.find(':') != std::string::npos && env.master_addr.front() != '['
                         ? fmt::format("[{}]:{}", env.master_addr, env.master_port)
                         : fmt::format("{}:{}", env.master_addr, env.master_port);
  const std::string who = impl->who();
  const std::string within = seconds_text(options.timeout);

  try {
    // Under torchrun's agent the store already exists (the agent hosts it); otherwise rank 0
    // hosts it. Either way every rank is a client of it.
    impl->store = compat::make_tcp_store(
        env.master_addr, static_cast<uint16_t>(env.master_port), env.rank == 0 && !env.agent_store, env.world_size,
        options.timeout, /*wait_for_workers=*/true,
        env.agent_store ? fmt::format("/worker/attempt_{}", env.restart_count) : std::string());
  } catch (const std::exception& error) {
    const std::string reason = compat::exception_reason(error);
    if (env.rank == 0)
      throw Error(ExitCode::failure,
                  fmt::format("{}: cannot host the rendezvous at {}, or not every rank reached it within {} s ({})",
                              who, impl->rendezvous, within, reason));
    throw Error(ExitCode::failure,
                fmt::format("{}: cannot reach the rendezvous at {} within {} s ({})", who, impl->rendezvous, within,
                            reason));
  }

  try {
    if (backend == "nccl") {
      const int index = device.has_index() ? device.index() : env.local_rank;
      impl->device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
      impl->group = compat::make_nccl_group(impl->store, env.rank, env.world_size, options.timeout, index);
    } else {
      impl->group = compat::make_gloo_group(impl->store, env.rank, env.world_size, options.timeout,
                                            gloo_devices_for(env.master_addr));
    }
  } catch (const std::exception& error) {
    throw Error(ExitCode::failure,
                fmt::format("{}: cannot connect to the other ranks through {} (rendezvous at {}) within {} s: a rank "
                            "stopped or is unreachable ({})",
                            who, backend, impl->rendezvous, within, compat::exception_reason(error)));
  }
  return std::unique_ptr<DataParallelGroup>(new DataParallelGroup(std::move(impl)));
}

int DataParallelGroup::rank() const { return impl_->rank; }

int DataParallelGroup::world_size() const { return impl_->world_size; }

std::string DataParallelGroup::backend_name() const { return impl_->backend; }

torch::Device DataParallelGroup::device() const { return impl_->device; }

void DataParallelGroup::all_reduce_sum(std::vector<torch::Tensor>& tensors) {
  Impl& impl = *impl_;
  if (impl.is_single()) return;
  const std::string operation = "all_reduce_sum";
  impl.check_usable(operation);
  for (const torch::Tensor& tensor : tensors) impl.check_tensor(operation, tensor, /*any_dtype=*/false);
  impl.run_in_buckets(
      operation, tensors, kUnlimitedBucketBytes,
      [&](std::vector<at::Tensor>& flat) { return impl.group->allreduce_sum(flat); }, [](torch::Tensor&) {});
}

void DataParallelGroup::average_gradients(const std::vector<torch::Tensor>& parameters, int64_t bucket_bytes) {
  Impl& impl = *impl_;
  if (impl.is_single()) return;
  const std::string operation = "average_gradients";
  impl.check_usable(operation);
  if (bucket_bytes < 1)
    throw Error(ExitCode::failure, fmt::format("{}: {}: bucket_bytes is {}, must be at least 1", impl.who(),
                                               operation, bucket_bytes));
  std::vector<torch::Tensor> gradients;
  gradients.reserve(parameters.size());
  {
    torch::NoGradGuard no_grad;
    for (const torch::Tensor& parameter : parameters) {
      if (!parameter.defined())
        throw Error(ExitCode::failure, fmt::format("{}: {}: an undefined parameter", impl.who(), operation));
      if (!parameter.grad().defined()) parameter.mutable_grad() = torch::zeros_like(parameter);
      const torch::Tensor& gradient = parameter.grad();
      impl.check_tensor(operation, gradient, /*any_dtype=*/false);
      if (!gradient.is_floating_point())
        throw Error(ExitCode::failure, fmt::format("{}: {}: a gradient of dtype {}, not floating-point", impl.who(),
                                                   operation, c10::toString(gradient.scalar_type())));
      gradients.push_back(gradient);
    }
  }
  const double ranks = static_cast<double>(impl.world_size);
  impl.run_in_buckets(
      operation, gradients, bucket_bytes, [&](std::vector<at::Tensor>& flat) { return impl.group->allreduce_sum(flat); },
      [ranks](torch::Tensor& flat) { flat.div_(ranks); });
}

void DataParallelGroup::broadcast(std::vector<torch::Tensor>& tensors, int root) {
  Impl& impl = *impl_;
  const std::string operation = "broadcast";
  if (root < 0 || root >= impl.world_size)
    throw Error(ExitCode::failure,
                fmt::format("{}: {}: root {} is not a rank of the group", impl.who(), operation, root));
  if (impl.is_single()) return;
  impl.check_usable(operation);
  for (const torch::Tensor& tensor : tensors) impl.check_tensor(operation, tensor, /*any_dtype=*/true);
  impl.run_in_buckets(
      operation, tensors, kUnlimitedBucketBytes,
      [&](std::vector<at::Tensor>& flat) { return impl.group->broadcast(flat, root); }, [](torch::Tensor&) {});
}

torch::Tensor DataParallelGroup::all_gather(const torch::Tensor& local) {
  Impl& impl = *impl_;
  const std::string operation = "all_gather";
  if (impl.is_single()) {
    if (!local.defined())
      throw Error(ExitCode::failure, fmt::format("{}: {}: an undefined tensor", impl.who(), operation));
    return local.dim() == 0 ? local.reshape({1}).clone() : local.clone();
  }
  impl.check_usable(operation);
  impl.check_tensor(operation, local, /*any_dtype=*/true);
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> inputs{as_wire(local.contiguous())};
  std::vector<std::vector<at::Tensor>> outputs(1);
  for (int i = 0; i < impl.world_size; ++i) outputs[0].push_back(torch::empty_like(inputs[0]));
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  try {
    works.push_back(impl.group->allgather(outputs, inputs));
  } catch (const std::exception& error) {
    impl.fail_to_start(operation, compat::exception_reason(error));
  }
  impl.wait_all(operation, works);
  const torch::Tensor gathered = local.dim() == 0 ? torch::stack(outputs[0]) : torch::cat(outputs[0], 0);
  return gathered.view(local.scalar_type());
}

void DataParallelGroup::barrier() {
  Impl& impl = *impl_;
  if (impl.is_single()) return;
  const std::string operation = "barrier";
  impl.check_usable(operation);
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  try {
    works.push_back(impl.group->barrier());
  } catch (const std::exception& error) {
    impl.fail_to_start(operation, compat::exception_reason(error));
  }
  impl.wait_all(operation, works);
}

void DataParallelGroup::run_on_main(const std::string& what, const std::function<void()>& work) {
  Impl& impl = *impl_;
  if (impl.is_single()) {
    work();
    return;
  }
  impl.check_usable("run_on_main");
  const std::string key = fmt::format("maskgit/run_on_main/{}", ++impl.run_on_main_calls);
  const std::string failed_prefix = "failed\n";
  const auto publish = [&](const std::string& value) {
    try {
      impl.store->set(key, std::vector<uint8_t>(value.begin(), value.end()));
    } catch (const std::exception&) {
      // The store is in this process: it fails only when this process is going down anyway.
    }
  };

  if (impl.rank == 0) {
    try {
      work();
    } catch (const Error& error) {
      publish(failed_prefix + std::to_string(static_cast<int>(error.code())) + "\n" + error.what());
      throw;
    } catch (const std::exception& error) {
      publish(failed_prefix + std::to_string(static_cast<int>(ExitCode::failure)) + "\n" + error.what());
      throw;
    } catch (...) {
      publish(failed_prefix + std::to_string(static_cast<int>(ExitCode::failure)) +
              "\nan exception that is not a std::exception");
      throw;
    }
    publish("done");
    return;
  }

  std::string value;
  try {
    // Rank 0's work may take long: no collective timeout here, and rank 0's death closes the
    // store, which ends this wait at once. Not c10d::Store::kNoTimeout: PyTorch 2.x's TCPStore
    // polls its socket with the timeout, so that 0 means "give up at once" there.
    impl.store->wait({key}, kRunOnMainWait);
    const std::vector<uint8_t> bytes = impl.store->get(key);
    value.assign(bytes.begin(), bytes.end());
  } catch (const std::exception& error) {
    const std::string reason = compat::exception_reason(error);
    impl.broken = fmt::format("rank 0 stopped while {}", what);
    if (looks_like_timeout(reason))
      throw Error(ExitCode::failure, fmt::format("{}: rank 0 did not finish {} within {} hours (the store at {}: {})",
                                                 impl.who(), what, kRunOnMainWait.count(), impl.rendezvous, reason));
    throw Error(ExitCode::failure,
                fmt::format("{}: rank 0 stopped while {} (it died or was killed: the store at {} closed: {})",
                            impl.who(), what, impl.rendezvous, reason));
  }
  if (value.compare(0, failed_prefix.size(), failed_prefix) == 0) {
    // "failed\n<exit code>\n<message>": rank 0 reports it; this rank exits with its code.
    const std::string rest = value.substr(failed_prefix.size());
    const size_t newline = rest.find('\n');
    int code = static_cast<int>(ExitCode::failure);
    try {
      code = std::stoi(rest.substr(0, newline));
    } catch (const std::exception&) {
    }
    throw AlreadyReported(static_cast<ExitCode>(code),
                          fmt::format("{}: rank 0 failed while {}: {}", impl.who(), what,
                                      newline == std::string::npos ? rest : rest.substr(newline + 1)));
  }
}

torch::Tensor broadcast_from_main(DataParallelGroup& group, const torch::Tensor& value) {
  if (group.world_size() == 1) return value;
  constexpr int64_t kMaxDims = 8;
  torch::Tensor header = torch::zeros({2 + kMaxDims}, torch::kLong);
  if (group.is_main()) {
    if (!value.defined() || value.dim() > kMaxDims)
      throw Error(ExitCode::failure, "broadcast_from_main: rank 0's value must be a tensor of at most 8 dimensions");
    header[0] = static_cast<int64_t>(value.scalar_type());
    header[1] = value.dim();
    for (int64_t d = 0; d < value.dim(); ++d) header[2 + d] = value.size(d);
  }
  std::vector<torch::Tensor> headers{header.to(group.device())};
  group.broadcast(headers);
  header = headers[0].to(torch::kCPU);
  std::vector<int64_t> sizes;
  for (int64_t d = 0; d < header[1].item<int64_t>(); ++d) sizes.push_back(header[2 + d].item<int64_t>());
  const auto dtype = static_cast<torch::ScalarType>(header[0].item<int64_t>());
  std::vector<torch::Tensor> payload{group.is_main() ? value.to(group.device()).contiguous()
                                                     : torch::empty(sizes, torch::dtype(dtype).device(group.device()))};
  group.broadcast(payload);
  return payload[0].to(torch::kCPU);
}

}  // namespace maskgit
