#pragma once
// What a tool says about itself (--version) and records in every PNG it writes: the toolkit's
// version (CMake's project version) and the git commit it was built from.
#include <string>

namespace maskgit {

// "0.1.0".
const char* toolkit_version();
// The 12-digit abbreviated commit of the source tree at build time, with "-dirty" when it had
// uncommitted changes; "unknown" when built outside a git checkout.
const char* toolkit_commit();
// One line for --version: "maskgit-sample 0.1.0 (commit 0123456789ab, LibTorch 1.13.0)".
std::string version_line(const std::string& tool);

}  // namespace maskgit
