#pragma once
// One exception type for everything a tool can report to a user. The exit code travels with
// the message so that mains map failures to stable, documented exit statuses.
#include <stdexcept>
#include <string>

namespace maskgit {

enum class ExitCode : int {
  ok = 0,
  failure = 1,      // anything not covered below (a bug, an internal error)
  usage = 2,        // bad flag, bad flag value, out-of-range option
  bad_input = 3,    // missing, unreadable, corrupt or wrong-sized input file
  io_error = 4,     // an output could not be written
  interrupted = 130 // stopped by SIGINT/SIGTERM after saving state
};

class Error : public std::runtime_error {
 public:
  Error(ExitCode code, const std::string& message);
  ExitCode code() const { return code_; }

 private:
  ExitCode code_;
};

// Convenience throwers so call sites read as what went wrong.
[[noreturn]] void throw_usage(const std::string& message);
[[noreturn]] void throw_bad_input(const std::string& message);
[[noreturn]] void throw_io_error(const std::string& message);

}  // namespace maskgit
