#include "runtime/openmp_policy.h"

#include <sys/auxv.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace maskgit {
namespace {

// Marks the environment of a process this hook re-executed, so that the policy is reported as
// ours rather than the user's (the loop itself is prevented by OMP_WAIT_POLICY being set); its
// value is the process name to restore.
constexpr char kMarkerName[] = "MASKGIT_OMP_WAIT_POLICY";
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
    if (ours) {
      // The kernel named the process after the path executed (/proc/self/exe → "exe"); give it
      // the name the first exec gave it, after the file the user ran (the marker's value).
      const char* name = find_variable(envp, kMarkerName);
      if (name != nullptr && *name != '\0') ::prctl(PR_SET_NAME, name, 0, 0, 0);
    }
    return;
  }
  // Started as `ld.so PROGRAM ...`: /proc/self/exe is the loader and argv was shifted, so a
  // re-exec would run the wrong program. Run on with libgomp's default policy.
  if (::getauxval(AT_BASE) == 0 || argv == nullptr || argv[0] == nullptr) return;
  // The process's name as the kernel set it (the basename of the file executed), carried to
  // the re-executed process in the marker.
  char name[16] = {0};  // PR_GET_NAME: at most 15 characters and the NUL
  if (::prctl(PR_GET_NAME, name, 0, 0, 0) != 0) name[0] = '\0';
  name[sizeof name - 1] = '\0';
  static char marker[sizeof kMarkerName + sizeof name] = {0};
  std::memcpy(marker, kMarkerName, sizeof kMarkerName - 1);
  marker[sizeof kMarkerName - 1] = '=';
  std::memcpy(marker + sizeof kMarkerName, name, std::strlen(name) + 1);
  size_t count = 0;
  while (envp != nullptr && envp[count] != nullptr) ++count;
  char** extended = static_cast<char**>(std::malloc((count + 3) * sizeof(char*)));
  if (extended == nullptr) return;
  for (size_t i = 0; i < count; ++i) extended[i] = envp[i];
  extended[count] = const_cast<char*>(kPolicy);
  extended[count + 1] = marker;
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
