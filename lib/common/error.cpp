#include "common/error.h"

namespace maskgit {

Error::Error(ExitCode code, const std::string& message) : std::runtime_error(message), code_(code) {}

void throw_usage(const std::string& message) { throw Error(ExitCode::usage, message); }
void throw_bad_input(const std::string& message) { throw Error(ExitCode::bad_input, message); }
void throw_io_error(const std::string& message) { throw Error(ExitCode::io_error, message); }

}  // namespace maskgit
