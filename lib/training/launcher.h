#pragma once
// maskgit-train --nproc N: N local ranks of a data-parallel run, started and watched like
// `torchrun --standalone --nproc-per-node N` does (lib/training/distributed.h reads what it sets).
namespace maskgit {

// Runs this same executable (/proc/self/exe) N = `nproc` times with `argv` unchanged, each rank i
// with RANK=i, LOCAL_RANK=i, WORLD_SIZE=N, LOCAL_WORLD_SIZE=N, MASTER_ADDR=127.0.0.1,
// MASTER_PORT=<a free port, found by binding 127.0.0.1:0>, MASKGIT_LOCAL_LAUNCHER=1 and, when
// neither OMP_NUM_THREADS is set nor `threads_fixed`, OMP_NUM_THREADS=max(1, usable CPUs / N)
// (usable: the affinity mask capped by a cgroup quota); the rest of the environment is passed on.
// Each rank is forked and exec'd at once (nothing else runs in the child), in a process group of
// its own (so that a terminal's Ctrl-C reaches the launcher alone, which forwards it once), and is
// SIGKILLed by the kernel should the launcher die. Waits for all ranks:
//   - SIGINT/SIGTERM to the launcher are forwarded to every rank; a second one SIGKILLs them;
//   - when a rank fails (non-zero status, or killed by a signal) before that, the launcher prints
//     one line on stderr, "rank R exited with status S" or "rank R was killed by signal SIGNAME",
//     sends SIGTERM to the other ranks and SIGKILL to those still running 5 s later.
// Unless `quiet`, first prints one line saying how many ranks it starts and where they meet.
// Returns the exit status to use: 0 when every rank succeeded; 130 when the launcher was
// interrupted; otherwise the first failing rank's status (128 + the signal's number for a signal).
// Throws InvalidArgument("nproc") for nproc < 1 or > 1024, Error(failure) when a rank cannot be
// started (the ranks already started are killed and waited for first).
int run_local_ranks(int nproc, int argc, char** argv, bool threads_fixed, bool quiet);

// True when this process is a rank started by run_local_ranks (MASKGIT_LOCAL_LAUNCHER=1).
bool started_by_local_launcher();
// Points whichever of stdin, stdout and stderr is closed at /dev/null, so that no socket or file
// a rank opens later takes their numbers (and is written to as stderr).
void open_standard_streams();

}  // namespace maskgit
