#include "common/console.h"

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/error.h"

namespace maskgit {

namespace {

[[noreturn]] void throw_stdout_error(int error_number) {
  throw_io_error(fmt::format("standard output: cannot write: {}", std::strerror(error_number)));
}

std::atomic<int> current_verbosity{static_cast<int>(Verbosity::normal)};

}  // namespace

void set_verbosity(Verbosity level) noexcept { current_verbosity.store(static_cast<int>(level)); }

Verbosity verbosity() noexcept { return static_cast<Verbosity>(current_verbosity.load()); }

void write_stdout(std::string_view text) {
  errno = 0;
  if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::ferror(stdout))
    throw_stdout_error(errno != 0 ? errno : EIO);
}

void write_stderr(std::string_view text) noexcept {
  std::fwrite(text.data(), 1, text.size(), stderr);
  std::clearerr(stderr);
}

void flush_stdout() {
  errno = 0;
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) throw_stdout_error(errno != 0 ? errno : EIO);
}

}  // namespace maskgit
