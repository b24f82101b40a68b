#include "runtime/threads.h"

#include <dlfcn.h>
#include <dirent.h>
#include <sched.h>
#include <unistd.h>

#include <fmt/format.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "common/error.h"
#include "runtime/openmp_policy.h"

namespace maskgit {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kRecheckInterval = std::chrono::milliseconds(500);

struct State {
  CpuThreadStatus status;
  Clock::time_point last_check{};
  bool configured = false;
};

State& state() {
  static State instance;
  return instance;
}

// OpenBLAS (Debian's libblas.so.3 alternative) keeps its own thread pool; LibTorch's
// set_num_threads does not reach it. Looked up at run time so that other BLAS libraries
// (MKL, which LibTorch already controls, or the reference BLAS) need nothing.
void set_blas_threads(int threads) {
  using SetThreads = void (*)(int);
  static const auto set_openblas = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (set_openblas != nullptr) set_openblas(threads);
}

void apply_thread_count(int threads) {
  State& s = state();
  if (s.configured && s.status.threads == threads) return;
  torch::set_num_threads(threads);
  set_blas_threads(threads);
  s.status.threads = threads;
}

// Threads of this process in state R (running or runnable), from /proc/self/task/*/stat.
int own_running_threads() {
  DIR* tasks = ::opendir("/proc/self/task");
  if (tasks == nullptr) return 1;
  int running = 0;
  while (const dirent* entry = ::readdir(tasks)) {
    if (entry->d_name[0] == '.') continue;
    char path[300];
    std::snprintf(path, sizeof path, "/proc/self/task/%s/stat", entry->d_name);
    std::FILE* file = std::fopen(path, "r");
    if (file == nullptr) continue;
    char line[512];
    const size_t length = std::fread(line, 1, sizeof line - 1, file);
    std::fclose(file);
    line[length] = '\0';
    // "tid (comm) S ...": the state follows the last ')' (comm may contain parentheses).
    const char* close = std::strrchr(line, ')');
    if (close != nullptr && close[1] == ' ' && close[2] == 'R') ++running;
  }
  ::closedir(tasks);
  return std::max(running, 1);  // the thread reading this is running
}

// The kernel's count of runnable scheduling entities, field 4 of /proc/loadavg ("3/120").
int runnable_threads() {
  std::FILE* file = std::fopen("/proc/loadavg", "r");
  if (file == nullptr) return -1;
  double one = 0, five = 0, fifteen = 0;
  int runnable = -1, total = 0;
  const int fields = std::fscanf(file, "%lf %lf %lf %d/%d", &one, &five, &fifteen, &runnable, &total);
  std::fclose(file);
  return fields == 5 ? runnable : -1;
}

// CPUs granted by a cgroup CPU quota (v2 cpu.max "quota period", v1 cfs_quota_us and
// cfs_period_us), rounded up; 0 when there is no quota.
int cgroup_cpu_quota() {
  double quota = -1, period = -1;
  if (std::FILE* file = std::fopen("/sys/fs/cgroup/cpu.max", "r")) {
    char first[32] = {0};
    if (std::fscanf(file, "%31s %lf", first, &period) == 2 && std::strcmp(first, "max") != 0) quota = std::atof(first);
    std::fclose(file);
  } else if (std::FILE* quota_file = std::fopen("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "r")) {
    if (std::fscanf(quota_file, "%lf", &quota) != 1) quota = -1;
    std::fclose(quota_file);
    if (std::FILE* period_file = std::fopen("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "r")) {
      if (std::fscanf(period_file, "%lf", &period) != 1) period = -1;
      std::fclose(period_file);
    }
  }
  if (quota <= 0 || period <= 0) return 0;
  return std::max(1, static_cast<int>(std::ceil(quota / period)));
}

int positive_integer_env(const char* name) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return 0;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  // OpenMP allows a list ("4,2") for nested levels; the first entry is the outer count.
  if (end == text || (*end != '\0' && *end != ',') || value < 1 || value > 4096)
    throw InvalidArgument(name, fmt::format("\"{}\" is not a thread count (an integer from 1 to 4096)", text));
  return static_cast<int>(value);
}

}  // namespace

int available_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  int cpus = ::sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set)
                                                           : static_cast<int>(std::thread::hardware_concurrency());
  if (const int quota = cgroup_cpu_quota(); quota > 0) cpus = std::min(cpus, quota);
  return std::max(1, cpus);
}

int automatic_thread_count(int cpus, int others_runnable) {
  if (others_runnable < 0) return std::max(cpus, 1);
  return std::clamp(cpus - others_runnable, 1, std::max(cpus, 1));
}

int other_runnable_threads() {
  int least = -1;
  for (int reading = 0; reading < 3; ++reading) {
    if (reading > 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    const int all = runnable_threads();
    if (all < 0) return -1;
    const int others = std::max(0, all - own_running_threads());
    least = least < 0 ? others : std::min(least, others);
  }
  // /proc/loadavg counts the whole machine (or host); with fewer CPUs in our affinity mask,
  // assume the others' load is spread evenly and count our share of it.
  cpu_set_t set;
  CPU_ZERO(&set);
  const long online = ::sysconf(_SC_NPROCESSORS_ONLN);
  if (::sched_getaffinity(0, sizeof set, &set) == 0 && online > CPU_COUNT(&set))
    least = static_cast<int>(std::lround(static_cast<double>(least) * CPU_COUNT(&set) / static_cast<double>(online)));
  return least;
}

void configure_cpu_threads(int requested) {
  (void)openmp_wait_policy_origin();  // links the OpenMP wait-policy hook into every tool
  State& s = state();
  s.status.cpus = available_cpus();
  int fixed = requested;
  s.status.source = "--threads";
  if (fixed <= 0) {
    fixed = positive_integer_env("OMP_NUM_THREADS");
    s.status.source = "OMP_NUM_THREADS";
  }
  s.status.automatic = fixed <= 0;
  if (s.status.automatic) {
    s.status.source = "automatic";
    fixed = automatic_thread_count(s.status.cpus, other_runnable_threads());
    s.last_check = Clock::now();
  }
  s.configured = false;  // force the first application
  apply_thread_count(fixed);
  s.configured = true;
}

void adapt_cpu_threads() {
  State& s = state();
  if (!s.configured || !s.status.automatic) return;
  const auto now = Clock::now();
  if (now - s.last_check < kRecheckInterval) return;
  s.last_check = now;
  apply_thread_count(automatic_thread_count(s.status.cpus, other_runnable_threads()));
}

CpuThreadStatus cpu_thread_status() { return state().status; }

int64_t run_slices_in_parallel(int64_t items, const std::function<void(int64_t, int64_t, int64_t)>& run) {
  const int64_t slices = std::min<int64_t>(items, at::in_parallel_region() ? 1 : torch::get_num_threads());
  if (slices <= 1) {
    c10::InferenceMode inference;
    run(0, 0, items);
    return 1;
  }
  // BLAS single-threaded while the slices run, whatever leaves this scope.
  struct SingleThreadedBlas {
    int restore;
    explicit SingleThreadedBlas(int threads) : restore(threads) { set_blas_threads(1); }
    ~SingleThreadedBlas() { set_blas_threads(restore); }
  } blas(state().configured ? state().status.threads : torch::get_num_threads());
  at::parallel_for(0, slices, 1, [&](int64_t first, int64_t last) {
    c10::InferenceMode inference;  // worker threads do not inherit the caller's guards
    for (int64_t slice = first; slice < last; ++slice) run(slice, slice * items / slices, (slice + 1) * items / slices);
  });
  return slices;
}

}  // namespace maskgit
