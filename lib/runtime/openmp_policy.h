#pragma once
// The OpenMP wait policy of every maskgit program (README "Threads and shared machines").
//
// libgomp reads OMP_WAIT_POLICY once, in its own initializer, before main() runs. Its default
// lets idle worker threads spin for a while after each parallel region, which on a shared
// machine steals the cores that other processes (and LibTorch's own BLAS threads) need: the
// tools ran 4-8x slower beside another job. Every executable that links this library
// therefore sets OMP_WAIT_POLICY=PASSIVE (idle workers sleep at once) from the ELF
// .preinit_array, which runs before any shared library's initializer, unless the user has
// chosen a policy (OMP_WAIT_POLICY or GOMP_SPINCOUNT set): the environment always wins.

namespace maskgit {

// "maskgit" when this process set OMP_WAIT_POLICY=PASSIVE itself, "environment" when the user
// had set OMP_WAIT_POLICY or GOMP_SPINCOUNT, "not applied" when the pre-init hook did not run
// (a shared library or an unusual loader). Linking a call to this function is also what pulls
// the hook into an executable.
const char* openmp_wait_policy_origin();

}  // namespace maskgit
