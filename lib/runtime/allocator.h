#pragma once
// Memory allocator settings of the tools (README "Threads and shared machines").
//
// LibTorch allocates every CPU tensor with malloc. glibc serves blocks of over 128 KiB (a
// threshold that adapts up to 32 MiB) with fresh mmap() calls and returns freed heap memory
// to the system once 128 KiB are free at the top, so a forward pass that allocates the same
// multi-megabyte activations again and again page-faults on every one of them: on this
// project's 2-core VM, 600,000 faults in 32 decoding steps, and the batch-64 forward of the
// shipped model took 188 ms instead of 101 ms. The tools therefore keep freed memory for
// reuse (the peak stays resident until the process exits).

namespace maskgit {

// mallopt(M_MMAP_THRESHOLD, 32 MiB), mallopt(M_TRIM_THRESHOLD, 512 MiB) and
// mallopt(M_TOP_PAD, 64 MiB), unless the user set any of glibc's MALLOC_MMAP_THRESHOLD_,
// MALLOC_TRIM_THRESHOLD_ or MALLOC_TOP_PAD_, or glibc.malloc tunables in GLIBC_TUNABLES (then
// glibc's reading of those stands). Returns whether the settings were applied. A no-op
// returning false on other C libraries. Blocks over 32 MiB (the largest threshold glibc
// accepts) are still mapped afresh each time.
bool keep_freed_memory_for_reuse();

}  // namespace maskgit
