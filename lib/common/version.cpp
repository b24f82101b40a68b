#include "common/version.h"

#include <torch/version.h>

#include "maskgit_commit.h"  // generated at build time (cmake/commit_header.cmake)

namespace maskgit {

const char* toolkit_version() { return MASKGIT_VERSION; }

const char* toolkit_commit() { return MASKGIT_COMMIT; }

std::string version_line(const std::string& tool) {
  return tool + " " + toolkit_version() + " (commit " + toolkit_commit() + ", LibTorch " + TORCH_VERSION + ")";
}

}  // namespace maskgit
