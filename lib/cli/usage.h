#pragma once
// Usage errors that name a command-line flag: only the command-line layer (lib/cli/, apps/)
// knows the flags, so only it throws these. The library throws InvalidArgument
// (common/error.h) with its own name for the argument instead; tests/library_names_no_flags.sh
// keeps it that way.
#include <string>

#include "common/error.h"

namespace maskgit {

[[noreturn]] inline void throw_usage(const std::string& message) { throw Error(ExitCode::usage, message); }

}  // namespace maskgit
