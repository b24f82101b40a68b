#include "runtime/openmp_policy.h"

#include <sys/auxv.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace maskgit {
namespace {

// Marks the environment of a process this hook re-executed, so that the policy is reported as
// ours rather than the user's (the loop itself is prevented by OMP_WAIT_POLICY being set).
constexpr char kMarkerName[] = "MASKGIT_OMP_WAIT_POLICY";
constexpr char kMarker[] = "MASKGIT_OMP_WAIT_POLICY=PASSIVE";
constexpr char kPolicy[] = "OMP_WAIT_POLICY=PASSIVE";

const char* wait_policy_origin = "not applied";

const char* find_variable(char** envp, const char* name) {
  const size_t length = std::strlen(name);
  for (char** entry = envp; entry != nullptr && *entry != nullptr; ++entry)
    if (std::strncmp(*entry, name, length) == 0 && (*entry)[length] == '=') return *entry + length + 1;
  return nullptr;
}

// Runs from .preinit_array: after the shared libraries are loaded but before any of their
// initializers, libgomp's (which reads OMP_WAIT_POLICY) included. glibc's own initializer
// then resets `environ` to the original block, so a setenv() here would be lost: instead the
// program is executed again with the variable added. Only C library calls are safe here.
void choose_openmp_wait_policy(int /*argc*/, char** argv, char** envp) {
  const char* policy = find_variable(envp, "OMP_WAIT_POLICY");
  if (policy != nullptr || find_variable(envp, "GOMP_SPINCOUNT") != nullptr) {
    const bool ours = policy != nullptr && std::strcmp(policy, "PASSIVE") == 0 && find_variable(envp, kMarkerName);
    wait_policy_origin = ours ? "maskgit" : "environment";
    if (ours && argv != nullptr && argv[0] != nullptr) {
      // The kernel named the process after the path executed (/proc/self/exe → "exe"); give
      // ps, top and pkill the tool's name back.
      const char* slash = std::strrchr(argv[0], '/');
      ::prctl(PR_SET_NAME, slash != nullptr ? slash + 1 : argv[0], 0, 0, 0);
    }
    return;
  }
  // Started as `ld.so PROGRAM ...`: /proc/self/exe is the loader and argv was shifted, so a
  // re-exec would run the wrong program. Run on with libgomp's default policy.
  if (::getauxval(AT_BASE) == 0 || argv == nullptr || argv[0] == nullptr) return;
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
