// test_distributed SCENARIO: data-parallel training on c10d (lib/training/distributed.h) and the
// local launcher (lib/training/launcher.h).
//
// Run without RANK (as ctest does), it is the driver: it launches itself as 2 local ranks through
// run_local_ranks, with the launcher's stderr (shared by the ranks) captured in a file, and checks
// the launcher's exit status, its one line about a failed rank, and the ranks' own "CHECKED"
// lines. Run with RANK (by the launcher), it is one rank of SCENARIO and checks what that rank
// sees. `environment` runs in the driver's process alone.
//
// Scenarios:
//   collectives   all_reduce_sum (float32, float64, int64, non-contiguous), broadcast, all_gather
//                 in rank order, barrier, average_gradients over several tiny buckets with mixed
//                 shapes, dtypes and one grad undefined on one rank (checked against the mean
//                 computed by hand).
//   run-on-main   rank 1 waits while rank 0 sleeps 1 s and writes a file; then rank 0's work
//                 throws and rank 1 gets "rank 0 failed while ..."; the group still works after.
//   dead-rank     rank 1 _exit(9)s before an all-reduce: rank 0 gets the clear Error in well under
//                 the 30 s timeout; the launcher reports rank 1's status and returns 9.
//   timeout       rank 1 sleeps past a 3 s timeout before an all-reduce: rank 0 fails with the
//                 timeout message within 10 s; the launcher returns rank 0's status 1.
//   main-dies     rank 0 (the store's host) _exit(7)s inside run_on_main while rank 1 waits on
//                 it: rank 1's wait ends at once with "rank 0 stopped while ...".
//   localhost     MASTER_ADDR=localhost: the rendezvous and an all-reduce work.
//   environment   read_launch_environment's refusals (each names its variable), the backend
//                 choice, single(), an unreachable rendezvous and a taken port, nproc < 1.
// Exit status: 0 when every check passed, 1 otherwise, 77 (skipped) in a build without Gloo.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "compat/distributed_compat.h"
#include "runtime/openmp_policy.h"
#include "training/distributed.h"
#include "training/launcher.h"

// Links the OpenMP wait-policy hook (as tests/test_main.cpp does): ctest runs tests side by side.
static const char* const openmp_wait_policy_hook = maskgit::openmp_wait_policy_origin();

namespace {

using namespace maskgit;
using Clock = std::chrono::steady_clock;

std::string g_who = "driver";
int g_failures = 0;

void check(bool ok, const std::string& what, int line) {
  if (ok) return;
  ++g_failures;
  std::fprintf(stderr, "%s: line %d: CHECK failed: %s\n", g_who.c_str(), line, what.c_str());
  std::fflush(stderr);
}
#define EXPECT(condition) check((condition), #condition, __LINE__)
#define EXPECT_MSG(condition, message) check((condition), std::string(#condition) + ": " + (message), __LINE__)

std::string text_of(const torch::Tensor& tensor) {
  std::ostringstream text;
  text << tensor.reshape({-1});
  return text.str();
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void say(const std::string& line) {
  std::fprintf(stderr, "%s: %s\n", g_who.c_str(), line.c_str());
  std::fflush(stderr);
}

// Runs `body`, which must throw Error of `code` whose what() contains every one of `parts`;
// returns the message.
std::string expect_error(const std::function<void()>& body, ExitCode code, const std::vector<std::string>& parts,
                         int line) {
  try {
    body();
  } catch (const Error& error) {
    check(error.code() == code, fmt::format("exit code {} (expected {}) of: {}", static_cast<int>(error.code()),
                                            static_cast<int>(code), error.what()),
          line);
    for (const std::string& part : parts)
      check(contains(error.what(), part), fmt::format("'{}' in: {}", part, error.what()), line);
    return error.what();
  } catch (const std::exception& error) {
    check(false, fmt::format("an Error, not another exception: {}", error.what()), line);
    return error.what();
  }
  check(false, "an Error was thrown", line);
  return std::string();
}

// Runs `body`, which must throw InvalidArgument naming `argument` (message containing `part`).
void expect_invalid(const std::function<void()>& body, const std::string& argument, const std::string& part,
                    int line) {
  try {
    body();
  } catch (const InvalidArgument& error) {
    check(error.argument() == argument,
          fmt::format("InvalidArgument(\"{}\") expected, got \"{}\": {}", argument, error.argument(), error.what()),
          line);
    check(contains(error.message(), part), fmt::format("'{}' in: {}", part, error.message()), line);
    return;
  } catch (const std::exception& error) {
    check(false, fmt::format("InvalidArgument(\"{}\") expected, got: {}", argument, error.what()), line);
    return;
  }
  check(false, fmt::format("InvalidArgument(\"{}\") was thrown", argument), line);
}

std::unique_ptr<DataParallelGroup> connect_rank(std::chrono::milliseconds timeout) {
  DistributedOptions options;
  options.backend = "gloo";
  options.timeout = timeout;
  return DataParallelGroup::connect(read_launch_environment(), torch::kCPU, options);
}

// ---- Rank scenarios ---------------------------------------------------------------------------

// A gradient that rank `rank` computes for parameter `index` (deterministic, so that every rank
// can compute the expected mean by hand).
torch::Tensor made_up_gradient(int index, int rank, const torch::Tensor& parameter) {
  auto options = torch::TensorOptions().dtype(parameter.scalar_type());
  torch::Tensor values = torch::arange(parameter.numel(), options).mul(0.25 * (index + 1)).add(rank * 3.5 - index);
  return values.reshape(parameter.sizes());
}

void rank_collectives(DataParallelGroup& group) {
  const int rank = group.rank();
  EXPECT(group.world_size() == 2);
  EXPECT(group.backend_name() == "gloo");
  EXPECT(group.is_main() == (rank == 0));

  // all_reduce_sum: every rank contributes (rank + 1) × base; the sum is 3 × base.
  const torch::Tensor base32 = torch::arange(6, torch::kFloat32).reshape({2, 3}).sub(2.5);
  const torch::Tensor base64 = torch::linspace(-1, 1, 5, torch::kFloat64);
  const torch::Tensor base_long = torch::tensor({int64_t{1} << 40, int64_t{-7}, int64_t{0}, int64_t{123456789012}});
  const torch::Tensor base_strided = torch::arange(12, torch::kFloat32).reshape({3, 4});
  std::vector<torch::Tensor> tensors = {base32 * (rank + 1), base64 * (rank + 1), base_long * (rank + 1),
                                        (base_strided * (rank + 1)).t(), torch::zeros({0}, torch::kFloat32)};
  EXPECT(!tensors[3].is_contiguous());
  group.all_reduce_sum(tensors);
  EXPECT(torch::equal(tensors[0], base32 * 3));
  EXPECT(torch::equal(tensors[1], base64 * 3));
  EXPECT(torch::equal(tensors[2], base_long * 3));
  EXPECT(tensors[2].scalar_type() == torch::kInt64);
  EXPECT(torch::equal(tensors[3], (base_strided * 3).t()));
  EXPECT(tensors[4].numel() == 0);
  std::vector<torch::Tensor> bad = {torch::ones({2}, torch::kInt32)};
  expect_error([&] { group.all_reduce_sum(bad); }, ExitCode::failure, {"dtype Int", "does not support"}, __LINE__);

  // broadcast from rank 1, then from rank 0.
  std::vector<torch::Tensor> shared = {torch::full({3}, static_cast<float>(rank + 10)),
                                       torch::full({2, 2}, static_cast<int64_t>(rank * 100)),
                                       torch::full({4}, rank == 1, torch::kBool),
                                       torch::full({3}, static_cast<float>(rank) + 0.5f, torch::kBFloat16)};
  group.broadcast(shared, 1);
  EXPECT(torch::equal(shared[0], torch::full({3}, 11.0f)));
  EXPECT(torch::equal(shared[1], torch::full({2, 2}, int64_t{100})));
  EXPECT(torch::equal(shared[2], torch::ones({4}, torch::kBool)));
  EXPECT(shared[3].scalar_type() == torch::kBFloat16);
  EXPECT(torch::equal(shared[3], torch::full({3}, 1.5f, torch::kBFloat16)));
  std::vector<torch::Tensor> from_main = {torch::full({5}, static_cast<double>(rank * 2 + 1), torch::kFloat64)};
  group.broadcast(from_main, 0);
  EXPECT(torch::equal(from_main[0], torch::ones({5}, torch::kFloat64)));
  expect_error([&] { group.broadcast(from_main, 2); }, ExitCode::failure, {"root 2"}, __LINE__);

  // all_gather: rank order along dim 0; a 0-dim tensor gives one element per rank.
  const torch::Tensor gathered = group.all_gather(torch::full({2, 3}, static_cast<float>(rank)));
  EXPECT(gathered.sizes() == torch::IntArrayRef({4, 3}));
  EXPECT(torch::equal(gathered.narrow(0, 0, 2), torch::zeros({2, 3})));
  EXPECT(torch::equal(gathered.narrow(0, 2, 2), torch::ones({2, 3})));
  const torch::Tensor scalars = group.all_gather(torch::tensor(static_cast<int64_t>(rank * 5 + 1)));
  EXPECT(torch::equal(scalars, torch::tensor({int64_t{1}, int64_t{6}})));
  const torch::Tensor flags = group.all_gather(torch::tensor({rank == 0, true}));
  EXPECT(flags.scalar_type() == torch::kBool);
  EXPECT(torch::equal(flags, torch::tensor({true, true, false, true})));

  // barrier: rank 1 arrives 0.4 s late, so rank 0 waits for it.
  if (rank == 1) std::this_thread::sleep_for(std::chrono::milliseconds(400));
  const auto barrier_start = Clock::now();
  group.barrier();
  if (rank == 0) EXPECT_MSG(seconds_since(barrier_start) > 0.25, fmt::format("{} s", seconds_since(barrier_start)));

  // average_gradients over buckets of at most 40 bytes (10 floats): mixed shapes and dtypes, a
  // non-contiguous grad, a parameter larger than a bucket, one without a grad on rank 1.
  std::vector<torch::Tensor> parameters = {
      torch::zeros({3, 4}, torch::requires_grad()),                        // 48 bytes: a bucket of its own
      torch::zeros({5}, torch::requires_grad()),                           // 20 bytes
      torch::zeros({2, 2, 2}, torch::dtype(torch::kFloat64).requires_grad(true)),  // 64 bytes
      torch::zeros({7}, torch::requires_grad()),                           // undefined grad on rank 1
      torch::zeros({1}, torch::requires_grad()),
      torch::zeros({2}, torch::dtype(torch::kFloat64).requires_grad(true)),
      torch::zeros({3}, torch::requires_grad()),
  };
  std::vector<torch::Tensor> expected;
  for (size_t i = 0; i < parameters.size(); ++i) {
    const int index = static_cast<int>(i);
    torch::Tensor gradient_0 = made_up_gradient(index, 0, parameters[i]);
    torch::Tensor gradient_1 = made_up_gradient(index, 1, parameters[i]);
    if (i == 3) gradient_1 = torch::zeros_like(gradient_1);
    expected.push_back((gradient_0 + gradient_1) / 2);
    if (i == 3 && rank == 1) continue;  // no grad: average_gradients must use zeros
    torch::Tensor mine = made_up_gradient(index, rank, parameters[i]);
    if (i == 0) mine = mine.t().contiguous().t();  // same values, non-contiguous (column-major)
    parameters[i].mutable_grad() = mine;
  }
  EXPECT(!parameters[0].grad().is_contiguous());
  EXPECT(rank == 0 || !parameters[3].grad().defined());
  group.average_gradients(parameters, 40);
  for (size_t i = 0; i < parameters.size(); ++i) {
    EXPECT_MSG(parameters[i].grad().defined(), fmt::format("parameter {}", i));
    if (!parameters[i].grad().defined()) continue;
    EXPECT_MSG(parameters[i].grad().sizes() == parameters[i].sizes(), fmt::format("parameter {}", i));
    EXPECT_MSG(parameters[i].grad().scalar_type() == parameters[i].scalar_type(), fmt::format("parameter {}", i));
    EXPECT_MSG(torch::allclose(parameters[i].grad(), expected[i], 1e-6, 1e-6),
               fmt::format("parameter {}: got {} expected {}", i, text_of(parameters[i].grad()), text_of(expected[i])));
  }
  // Once more with the default buckets (one for all float32, one for float64).
  for (size_t i = 0; i < parameters.size(); ++i)
    parameters[i].mutable_grad() = made_up_gradient(static_cast<int>(i), rank, parameters[i]);
  group.average_gradients(parameters);
  for (size_t i = 0; i < parameters.size(); ++i) {
    const torch::Tensor mean = (made_up_gradient(static_cast<int>(i), 0, parameters[i]) +
                                made_up_gradient(static_cast<int>(i), 1, parameters[i])) / 2;
    EXPECT_MSG(torch::allclose(parameters[i].grad(), mean, 1e-6, 1e-6), fmt::format("parameter {}", i));
  }
  say("collectives passed");
}

void rank_run_on_main(DataParallelGroup& group, const std::string& directory) {
  const std::string path = directory + "/cache.txt";
  if (group.rank() == 1) EXPECT(!std::filesystem::exists(path));
  const auto start = Clock::now();
  group.run_on_main("building the test cache", [&] {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    std::ofstream(path) << "built";
  });
  if (group.rank() == 1) {
    EXPECT_MSG(seconds_since(start) > 0.8, fmt::format("rank 1 waited only {} s", seconds_since(start)));
    std::ifstream file(path);
    std::stringstream text;
    text << file.rdbuf();
    EXPECT_MSG(text.str() == "built", text.str());
  }

  // Rank 0's work fails: it rethrows there; rank 1 gets the error naming rank 0 and the work.
  try {
    group.run_on_main("building the second cache", [] { throw Error(ExitCode::io_error, "disk full"); });
    EXPECT(false);  // must not return
  } catch (const Error& error) {
    const std::string text = error.what();
    if (group.rank() == 0) {
      EXPECT(error.code() == ExitCode::io_error);
      EXPECT_MSG(text == "disk full", text);
    } else {
      // Rank 0's exit code, and nothing more to print: rank 0 reports it.
      EXPECT(error.code() == ExitCode::io_error);
      EXPECT(dynamic_cast<const AlreadyReported*>(&error) != nullptr);
      EXPECT_MSG(text == "rank 1 of 2: rank 0 failed while building the second cache: disk full", text);
    }
  }
  // The group still works.
  std::vector<torch::Tensor> one = {torch::ones({3})};
  group.all_reduce_sum(one);
  EXPECT(torch::equal(one[0], torch::full({3}, 2.0f)));
  say("run_on_main passed");
}

void rank_dead_rank(DataParallelGroup& group) {
  std::vector<torch::Tensor> warm_up = {torch::ones({4})};
  group.all_reduce_sum(warm_up);
  EXPECT(torch::equal(warm_up[0], torch::full({4}, 2.0f)));
  if (group.rank() == 1) ::_exit(9);
  // Rank 0 outlives the launcher's SIGTERM (sent once rank 1 is gone) to finish its checks; the
  // launcher's SIGKILL 5 s later would still end it, so it must not hang either.
  ::signal(SIGTERM, SIG_IGN);
  std::vector<torch::Tensor> tensors = {torch::ones({1000}), torch::ones({10}, torch::kFloat64)};
  const auto start = Clock::now();
  const std::string message =
      expect_error([&] { group.all_reduce_sum(tensors); }, ExitCode::failure,
                   {"rank 0 of 2: all_reduce_sum failed: another rank stopped", "timeout of 30 s", "(gloo: "}, __LINE__);
  const double seconds = seconds_since(start);
  EXPECT_MSG(seconds < 10, fmt::format("{} s", seconds));
  // The group is unusable from now on, at once.
  const auto again = Clock::now();
  expect_error([&] { group.barrier(); }, ExitCode::failure, {"rank 0 of 2: barrier", "unusable"}, __LINE__);
  EXPECT(seconds_since(again) < 1);
  say(fmt::format("CHECKED after {:.2f} s: {}", seconds, message));
}

void rank_timeout(DataParallelGroup& group) {
  std::vector<torch::Tensor> warm_up = {torch::ones({4})};
  group.all_reduce_sum(warm_up);
  if (group.rank() == 1) {
    std::this_thread::sleep_for(std::chrono::seconds(30));  // hung; the launcher ends it
    ::_exit(3);
  }
  std::vector<torch::Tensor> tensors = {torch::ones({100})};
  const auto start = Clock::now();
  const std::string message = expect_error(
      [&] { group.all_reduce_sum(tensors); }, ExitCode::failure,
      {"rank 0 of 2: all_reduce_sum failed: another rank did not answer within the timeout of 3 s", "(gloo: "},
      __LINE__);
  const double seconds = seconds_since(start);
  EXPECT_MSG(seconds > 2.5 && seconds < 10, fmt::format("{} s", seconds));
  say(fmt::format("CHECKED after {:.2f} s: {}", seconds, message));
}

void rank_main_dies(DataParallelGroup& group) {
  if (group.rank() == 0) {
    group.run_on_main("building the cache", [] {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      ::_exit(7);
    });
    return;
  }
  ::signal(SIGTERM, SIG_IGN);  // finish the checks after the launcher's SIGTERM
  const auto start = Clock::now();
  const std::string message =
      expect_error([&] { group.run_on_main("building the cache", [] {}); }, ExitCode::failure,
                   {"rank 1 of 2: rank 0 stopped while building the cache"}, __LINE__);
  const double seconds = seconds_since(start);
  EXPECT_MSG(seconds < 10, fmt::format("{} s", seconds));
  std::vector<torch::Tensor> tensors = {torch::ones({1})};
  expect_error([&] { group.all_reduce_sum(tensors); }, ExitCode::failure, {"unusable"}, __LINE__);
  say(fmt::format("CHECKED after {:.2f} s: {}", seconds, message));
}

void rank_localhost() {
  ::setenv("MASTER_ADDR", "localhost", 1);
  auto group = connect_rank(std::chrono::seconds(30));
  std::vector<torch::Tensor> tensors = {torch::full({3}, static_cast<float>(group->rank() + 1))};
  group->all_reduce_sum(tensors);
  EXPECT(torch::equal(tensors[0], torch::full({3}, 3.0f)));
  const torch::Tensor ranks = group->all_gather(torch::tensor({static_cast<int64_t>(group->rank())}));
  EXPECT(torch::equal(ranks, torch::tensor({int64_t{0}, int64_t{1}})));
  say("localhost passed");
}

int run_rank(const std::string& scenario) {
  const LaunchEnvironment env = read_launch_environment();
  g_who = fmt::format("rank {}", env.rank);
  EXPECT(env.launched && env.world_size == 2 && env.local_rank == env.rank && env.local_world_size == 2);
  EXPECT(env.master_addr == "127.0.0.1");
  EXPECT(started_by_local_launcher());
  const char* omp = std::getenv("OMP_NUM_THREADS");
  EXPECT(omp != nullptr);
  try {
    if (scenario == "collectives") {
      rank_collectives(*connect_rank(std::chrono::seconds(30)));
    } else if (scenario == "run-on-main") {
      const char* directory = std::getenv("MASKGIT_TEST_DIR");
      EXPECT(directory != nullptr);
      rank_run_on_main(*connect_rank(std::chrono::seconds(30)), directory ? directory : "/nonexistent");
    } else if (scenario == "dead-rank") {
      auto group = connect_rank(std::chrono::seconds(30));
      rank_dead_rank(*group);
      const auto start = Clock::now();
      group.reset();
      say(fmt::format("group closed in {:.2f} s", seconds_since(start)));
    } else if (scenario == "timeout") {
      auto group = connect_rank(std::chrono::seconds(3));
      rank_timeout(*group);
      return 1;  // as a trainer whose collective failed
    } else if (scenario == "main-dies") {
      rank_main_dies(*connect_rank(std::chrono::seconds(30)));
    } else if (scenario == "localhost") {
      rank_localhost();
    } else {
      say("unknown scenario " + scenario);
      return 2;
    }
  } catch (const std::exception& error) {
    say(fmt::format("unexpected exception: {}", error.what()));
    return 1;
  }
  return g_failures == 0 ? 0 : 1;
}

// ---- Driver -----------------------------------------------------------------------------------

struct Launch {
  int status = -1;
  std::string stderr_text;
  double seconds = 0;
};

// Launches this program as 2 ranks of `argv`'s scenario with stderr captured.
Launch launch_ranks(int argc, char** argv) {
  char path[] = "/tmp/maskgit-test-distributed-XXXXXX";
  const int fd = ::mkstemp(path);
  if (fd < 0) throw std::runtime_error("mkstemp failed");
  std::fflush(stderr);
  const int saved = ::dup(2);
  ::dup2(fd, 2);
  ::close(fd);
  Launch result;
  const auto start = Clock::now();
  try {
    result.status = run_local_ranks(2, argc, argv, /*threads_fixed=*/false, /*quiet=*/false);
  } catch (...) {
    std::fflush(stderr);
    ::dup2(saved, 2);
    ::close(saved);
    ::unlink(path);
    throw;
  }
  result.seconds = seconds_since(start);
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  result.stderr_text = text.str();
  ::unlink(path);
  std::fprintf(stderr, "---- launcher and ranks (status %d, %.2f s) ----\n%s----\n", result.status, result.seconds,
               result.stderr_text.c_str());
  return result;
}

int drive(const std::string& scenario, int argc, char** argv) {
  if (!compat::has_gloo()) {
    std::fprintf(stderr, "skipped: this build has no Gloo\n");
    return 77;
  }
  if (scenario == "collectives" || scenario == "localhost") {
    const Launch launch = launch_ranks(argc, argv);
    EXPECT(launch.status == 0);
    const std::string passed = scenario == "collectives" ? "collectives passed" : "localhost passed";
    EXPECT(contains(launch.stderr_text, "rank 0: " + passed));
    EXPECT(contains(launch.stderr_text, "rank 1: " + passed));
    EXPECT(contains(launch.stderr_text, "starting 2 ranks (rendezvous at 127.0.0.1:"));
  } else if (scenario == "run-on-main") {
    char directory[] = "/tmp/maskgit-test-run-on-main-XXXXXX";
    EXPECT(::mkdtemp(directory) != nullptr);
    ::setenv("MASKGIT_TEST_DIR", directory, 1);
    const Launch launch = launch_ranks(argc, argv);
    std::filesystem::remove_all(directory);
    EXPECT(launch.status == 0);
    EXPECT(contains(launch.stderr_text, "rank 0: run_on_main passed"));
    EXPECT(contains(launch.stderr_text, "rank 1: run_on_main passed"));
  } else if (scenario == "dead-rank") {
    const Launch launch = launch_ranks(argc, argv);
    EXPECT(launch.status == 9);
    EXPECT(contains(launch.stderr_text, "\nrank 1 exited with status 9\n"));
    EXPECT(contains(launch.stderr_text, "rank 0: CHECKED"));
    EXPECT(contains(launch.stderr_text, "rank 0: group closed"));
    EXPECT(!contains(launch.stderr_text, "CHECK failed"));
    EXPECT_MSG(launch.seconds < 5, fmt::format("{} s: rank 0 needed the launcher's SIGKILL", launch.seconds));
  } else if (scenario == "timeout") {
    const Launch launch = launch_ranks(argc, argv);
    EXPECT(launch.status == 1);
    EXPECT(contains(launch.stderr_text, "\nrank 0 exited with status 1\n"));
    EXPECT(contains(launch.stderr_text, "rank 0: CHECKED"));
    EXPECT(!contains(launch.stderr_text, "CHECK failed"));
    EXPECT_MSG(launch.seconds < 15, fmt::format("{} s", launch.seconds));
  } else if (scenario == "main-dies") {
    const Launch launch = launch_ranks(argc, argv);
    EXPECT(launch.status == 7);
    EXPECT(contains(launch.stderr_text, "\nrank 0 exited with status 7\n"));
    EXPECT(contains(launch.stderr_text, "rank 1: CHECKED"));
    EXPECT(!contains(launch.stderr_text, "CHECK failed"));
    EXPECT_MSG(launch.seconds < 5, fmt::format("{} s: rank 1 needed the launcher's SIGKILL", launch.seconds));
  } else {
    std::fprintf(stderr, "unknown scenario %s\n", scenario.c_str());
    return 2;
  }
  return g_failures == 0 ? 0 : 1;
}

// ---- environment (in this process) ------------------------------------------------------------

void set_launch_variables(const std::vector<std::pair<const char*, const char*>>& values) {
  for (const char* name : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"})
    ::unsetenv(name);
  for (const auto& [name, value] : values) ::setenv(name, value, 1);
}

// A port on 127.0.0.1 that nothing listens on (bound, then closed).
int unused_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

int test_environment(char** argv) {
  g_who = "environment";
  const auto read = [] { (void)read_launch_environment(); };
  using Values = std::vector<std::pair<const char*, const char*>>;
  const Values good = {{"WORLD_SIZE", "2"}, {"RANK", "1"}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "29500"}};

  set_launch_variables({});
  LaunchEnvironment env = read_launch_environment();
  EXPECT(!env.launched && env.rank == 0 && env.world_size == 1 && env.local_rank == 0 && env.local_world_size == 1);
  set_launch_variables({{"RANK", "5"}});  // without WORLD_SIZE: not launched, RANK ignored
  EXPECT(!read_launch_environment().launched);

  set_launch_variables(good);
  env = read_launch_environment();
  EXPECT(env.launched && env.rank == 1 && env.world_size == 2 && env.local_rank == 1 && env.local_world_size == 2);
  EXPECT(env.master_addr == "127.0.0.1" && env.master_port == 29500);
  set_launch_variables(good);
  ::setenv("LOCAL_RANK", "0", 1);
  ::setenv("LOCAL_WORLD_SIZE", "1", 1);
  env = read_launch_environment();
  EXPECT(env.rank == 1 && env.local_rank == 0 && env.local_world_size == 1);

  const auto refused = [&](const char* name, const char* value, const std::string& argument, const std::string& part,
                           int line) {
    set_launch_variables(good);
    if (value == nullptr) ::unsetenv(name);
    else ::setenv(name, value, 1);
    expect_invalid(read, argument, part, line);
  };
  refused("RANK", "abc", "RANK", "is 'abc', not a non-negative decimal integer", __LINE__);
  refused("RANK", "2", "RANK", "is 2, at least WORLD_SIZE (2)", __LINE__);
  refused("RANK", "3", "RANK", "is 3, at least WORLD_SIZE (2)", __LINE__);
  refused("RANK", "-1", "RANK", "not a non-negative decimal integer", __LINE__);
  refused("RANK", "1 ", "RANK", "not a non-negative decimal integer", __LINE__);
  refused("RANK", "", "RANK", "empty", __LINE__);
  refused("RANK", nullptr, "RANK", "is not set", __LINE__);
  refused("WORLD_SIZE", "0", "WORLD_SIZE", "at least 1", __LINE__);
  refused("WORLD_SIZE", "2x", "WORLD_SIZE", "not a non-negative decimal integer", __LINE__);
  refused("WORLD_SIZE", "99999999999999999999", "WORLD_SIZE", "too large", __LINE__);
  refused("MASTER_PORT", "0", "MASTER_PORT", "is 0, not a port (1 to 65535)", __LINE__);
  refused("MASTER_PORT", "65536", "MASTER_PORT", "not a port", __LINE__);
  refused("MASTER_PORT", "http", "MASTER_PORT", "not a non-negative decimal integer", __LINE__);
  refused("MASTER_PORT", nullptr, "MASTER_PORT", "is not set", __LINE__);
  refused("MASTER_ADDR", nullptr, "MASTER_ADDR", "is not set", __LINE__);
  refused("MASTER_ADDR", "", "MASTER_ADDR", "empty", __LINE__);
  refused("MASTER_ADDR", "a b", "MASTER_ADDR", "not a host name", __LINE__);
  refused("LOCAL_WORLD_SIZE", "3", "LOCAL_WORLD_SIZE", "more than WORLD_SIZE (2)", __LINE__);
  refused("LOCAL_RANK", "2", "LOCAL_RANK", "at least LOCAL_WORLD_SIZE (2)", __LINE__);
  set_launch_variables({});

  // single(): every operation a no-op, no c10d object.
  auto single = DataParallelGroup::single();
  EXPECT(single->rank() == 0 && single->world_size() == 1 && single->is_main() && single->backend_name() == "none");
  std::vector<torch::Tensor> tensors = {torch::full({2}, 3.0f)};
  single->all_reduce_sum(tensors);
  single->broadcast(tensors);
  single->barrier();
  EXPECT(torch::equal(tensors[0], torch::full({2}, 3.0f)));
  EXPECT(torch::equal(single->all_gather(tensors[0]), tensors[0]));
  EXPECT(single->all_gather(torch::tensor(4.0)).sizes() == torch::IntArrayRef({1}));
  torch::Tensor parameter = torch::ones({3}, torch::requires_grad());
  single->average_gradients({parameter});
  EXPECT(!parameter.grad().defined());
  bool ran = false;
  single->run_on_main("nothing", [&] { ran = true; });
  EXPECT(ran);

  // The backend choice, before any network.
  LaunchEnvironment two;
  two.launched = true;
  two.world_size = 2;
  two.rank = 1;
  DistributedOptions options;
  options.backend = "mpi";
  expect_invalid([&] { DataParallelGroup::connect(two, torch::kCPU, options); }, "backend",
                 "'mpi' is not one of gloo, nccl, auto", __LINE__);
  options.backend = "nccl";
  expect_invalid([&] { DataParallelGroup::connect(two, torch::kCPU, options); }, "backend", "needs a CUDA device",
                 __LINE__);
  options.backend = "gloo";
  options.timeout = std::chrono::milliseconds(0);
  if (compat::has_gloo())
    expect_invalid([&] { DataParallelGroup::connect(two, torch::kCPU, options); }, "timeout", "must be positive",
                   __LINE__);
  else
    expect_invalid([&] { DataParallelGroup::connect(two, torch::kCPU, options); }, "backend", "no Gloo", __LINE__);
  LaunchEnvironment one;  // WORLD_SIZE=1: a single group, whatever the address
  options.timeout = std::chrono::seconds(1);
  options.backend = "auto";
  if (compat::has_gloo()) EXPECT(DataParallelGroup::connect(one, torch::kCPU, options)->backend_name() == "none");

  if (compat::has_gloo()) {
    // Rank 1 of 2 with nobody at the rendezvous: a clear error after the 1 s timeout.
    two.master_port = unused_port();
    auto start = Clock::now();
    expect_error([&] { DataParallelGroup::connect(two, torch::kCPU, options); }, ExitCode::failure,
                 {fmt::format("rank 1 of 2: cannot reach the rendezvous at 127.0.0.1:{} within 1 s (",
                              two.master_port)},
                 __LINE__);
    EXPECT_MSG(seconds_since(start) < 10, fmt::format("{} s", seconds_since(start)));

    // Rank 0 of 2 whose port is taken (something listens there already).
    const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_ANY);
    socklen_t length = sizeof address;
    ::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address);
    ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
    ::listen(listener, 4);
    two.rank = 0;
    two.master_port = ntohs(address.sin_port);
    start = Clock::now();
    const std::string message = expect_error([&] { DataParallelGroup::connect(two, torch::kCPU, options); },
                                             ExitCode::failure,
                                             {fmt::format("rank 0 of 2: cannot host the rendezvous at 127.0.0.1:{}",
                                                          two.master_port)},
                                             __LINE__);
    say(fmt::format("port taken ({:.2f} s): {}", seconds_since(start), message));
    ::close(listener);
  }

  // The launcher refuses nproc < 1 before starting anything.
  char* arguments[] = {argv[0], nullptr};
  expect_invalid([&] { run_local_ranks(0, 1, arguments, false, true); }, "nproc", "is 0", __LINE__);
  EXPECT(!started_by_local_launcher());
  if (g_failures == 0) say("passed");
  return g_failures == 0 ? 0 : 1;
}

}  // namespace

// `serve-store PORT SECONDS`: hosts a c10d TCPStore on 127.0.0.1:PORT that only serves, as
// torchrun's agent does, for SECONDS (tests/data_parallel.sh starts ranks against it with
// TORCHELASTIC_USE_AGENT_STORE=True). Prints "ready" on stdout once it listens.
int serve_store(int port, int seconds) {
  const auto store = maskgit::compat::make_tcp_store("127.0.0.1", static_cast<uint16_t>(port), /*is_server=*/true, 1,
                                                     std::chrono::seconds(seconds), /*wait_for_workers=*/false);
  std::printf("ready\n");
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  return 0;
}

int main(int argc, char** argv) {
  (void)openmp_wait_policy_hook;
  if (argc == 4 && std::string(argv[1]) == "serve-store") return serve_store(std::atoi(argv[2]), std::atoi(argv[3]));
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s collectives|run-on-main|dead-rank|timeout|main-dies|localhost|environment\n",
                 argv[0]);
    return 2;
  }
  const std::string scenario = argv[1];
  try {
    if (std::getenv("RANK") != nullptr) return run_rank(scenario);
    if (scenario == "environment") return test_environment(argv);
    return drive(scenario, argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "%s: unexpected exception: %s\n", g_who.c_str(), error.what());
    return 1;
  }
}
