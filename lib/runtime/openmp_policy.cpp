#include "runtime/openmp_policy.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace maskgit {
namespace {

// Marks the environment of a process this hook re-executed, so that it is not done twice and
// the policy is reported as ours rather than the user's.
constexpr char kMarker[] = "MASKGIT_OMP_WAIT_POLICY=PASSIVE";
constexpr char kPolicy[] = "OMP_WAIT_POLICY=PASSIVE";

const char* wait_policy_origin = "not applied";

bool has_variable(char** envp, const char* name) {
  const size_t length = std::strlen(name);
  for (char** entry = envp; entry != nullptr && *entry != nullptr; ++entry)
    if (std::strncmp(*entry, name, length) == 0 && (*entry)[length] == '=') return true;
  return false;
}

// Runs from .preinit_array: after the shared libraries are loaded but before any of their
// initializers, libgomp's (which reads OMP_WAIT_POLICY) included. glibc's own initializer
// then resets `environ` to the original block, so a setenv() here would be lost: instead the
// program is executed again with the variable added. Only C library calls are safe here.
void choose_openmp_wait_policy(int /*argc*/, char** argv, char** envp) {
  if (has_variable(envp, "MASKGIT_OMP_WAIT_POLICY")) {
    wait_policy_origin = "maskgit";
    return;
  }
  if (has_variable(envp, "OMP_WAIT_POLICY") || has_variable(envp, "GOMP_SPINCOUNT")) {
    wait_policy_origin = "environment";
    return;
  }
  size_t count = 0;
  while (envp != nullptr && envp[count] != nullptr) ++count;
  char** extended = static_cast<char**>(std::malloc((count + 3) * sizeof(char*)));
  if (extended == nullptr) return;
  for (size_t i = 0; i < count; ++i) extended[i] = envp[i];
  extended[count] = const_cast<char*>(kPolicy);
  extended[count + 1] = const_cast<char*>(kMarker);
  extended[count + 2] = nullptr;
  ::execve("/proc/self/exe", argv, extended);
  std::free(extended);  // exec failed (no /proc): run on with libgomp's default policy
}

}  // namespace

const char* openmp_wait_policy_origin() { return wait_policy_origin; }

}  // namespace maskgit

// Only executables have a .preinit_array; in a shared library the linker would drop this.
__attribute__((section(".preinit_array"), used)) static void (*const maskgit_preinit_openmp)(int, char**, char**) =
    &maskgit::choose_openmp_wait_policy;
