#include "common/error.h"

#include <utility>

namespace maskgit {

Error::Error(ExitCode code, const std::string& message) : std::runtime_error(message), code_(code) {}

InvalidArgument::InvalidArgument(std::string argument, std::string message, ExitCode code)
    : Error(code, argument + ": " + message), argument_(std::move(argument)), message_(std::move(message)) {}

void throw_bad_input(const std::string& message) { throw Error(ExitCode::bad_input, message); }
void throw_io_error(const std::string& message) { throw Error(ExitCode::io_error, message); }

}  // namespace maskgit
