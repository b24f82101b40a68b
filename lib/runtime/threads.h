#pragma once
// CPU thread policy of the tools and trainers (README "Threads and shared machines").
//
// One thread count governs LibTorch's intra-op (OpenMP) pool and the BLAS library's own pool
// (OpenBLAS keeps a separate pthread pool; two pools of "all cores" each oversubscribe the
// machine). The count is, in order of precedence:
//   1. --threads N (N >= 1), fixed for the run;
//   2. OMP_NUM_THREADS, the standard variable, fixed for the run;
//   3. automatic: the CPUs this process may run on (its affinity mask, capped by a cgroup CPU
//      quota) minus the other processes' runnable threads (scaled to our share of the machine
//      when the mask holds fewer CPUs than are online), at least 1, re-checked at most twice a
//      second at batch and step boundaries (adapt_cpu_threads), so that a tool beside another
//      job does not split its work across a core it would have to wait for.
// Sampling results do not depend on the count (the BLAS computes each row alike whatever the
// number of rows; tested), but LibTorch's reductions split by thread count, so bit-identical
// training runs need a fixed count (--threads or OMP_NUM_THREADS).
#include <cstdint>
#include <functional>
#include <string>

namespace maskgit {

struct CpuThreadStatus {
  int threads = 1;         // the count in force now
  int cpus = 1;            // CPUs in the affinity mask
  bool automatic = true;   // false when fixed by --threads or OMP_NUM_THREADS
  std::string source;      // "--threads", "OMP_NUM_THREADS" or "automatic"
};

// Applies the policy: `requested` > 0 fixes the count (--threads); 0 means OMP_NUM_THREADS if
// set to a positive integer, else automatic. Throws InvalidArgument("OMP_NUM_THREADS") when
// that variable is set but not a positive integer.
void configure_cpu_threads(int requested);

// In automatic mode, re-measures the other processes' load if at least 0.5 s have passed
// since the last measurement and changes the thread count when it should. Cheap enough to
// call once per decoding step or training step; does nothing in fixed mode. Call it from the
// thread that runs the model (OpenMP thread counts are per calling thread).
void adapt_cpu_threads();

CpuThreadStatus cpu_thread_status();

// The automatic rule: cpus − other runnable threads, clamped to [1, cpus].
int automatic_thread_count(int cpus, int others_runnable);

// Runnable threads of other processes right now (the kernel's count in /proc/loadavg less
// this process's own running threads, the least of three quick readings); -1 if unknown.
int other_runnable_threads();

// CPUs in this process's affinity mask, capped by a cgroup CPU quota (at least 1).
int available_cpus();

// Data-parallel CPU inference: splits [0, items) into one contiguous slice per intra-op
// thread and runs run(slice, begin, end) for all slices at once, with BLAS single-threaded
// meanwhile, so each thread runs whole forward passes instead of every operation being split
// (and synchronised) across threads. Returns the number of slices (1: run(0, 0, items) on the
// calling thread, when there is one thread or at most one item). Inference mode is on inside
// (worker threads do not inherit the caller's guards). Exceptions from a slice are rethrown.
// Changes process-wide BLAS settings meanwhile: call it from one thread at a time.
int64_t run_slices_in_parallel(int64_t items, const std::function<void(int64_t slice, int64_t begin, int64_t end)>& run);

}  // namespace maskgit
