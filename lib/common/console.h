#pragma once
// Writing to the terminal from the tools, with one policy for failures:
// - standard output carries results (--json lines, tables): a failed write is an output error
//   (Error(io_error), exit 4), never a silent success or a crash;
// - standard error carries progress and diagnostics: a failed write is ignored (there is nowhere
//   left to report it, and progress must never stop the work).
// A closed pipe on stdout ends the tool by SIGPIPE, as with any Unix filter (`| head -1`).
#include <fmt/format.h>

#include <string_view>

namespace maskgit {

// How much a tool says on stderr: -q/--quiet (errors only), the default (progress and notes),
// -v/--verbose (also what was resolved: settings, model identity, timings). Set once by the
// command-line layer after parsing; read by whatever prints progress. Errors are always printed.
enum class Verbosity { quiet = 0, normal = 1, verbose = 2 };
void set_verbosity(Verbosity level) noexcept;
Verbosity verbosity() noexcept;

// Writes `text` to stdout; throws Error(io_error) "standard output: cannot write: ..." on failure.
void write_stdout(std::string_view text);
// Writes `text` to stderr, ignoring failures.
void write_stderr(std::string_view text) noexcept;
// Flushes stdout; throws like write_stdout. run_tool calls it before a tool exits.
void flush_stdout();

template <typename... Args>
void print_stdout(fmt::format_string<Args...> format, Args&&... args) {
  write_stdout(fmt::format(format, std::forward<Args>(args)...));
}

template <typename... Args>
void print_stderr(fmt::format_string<Args...> format, Args&&... args) noexcept {
  try {
    write_stderr(fmt::format(format, std::forward<Args>(args)...));
  } catch (...) {  // formatting failed (bad_alloc): a diagnostic is not worth the run
  }
}

// A note on stderr (a drawn random seed, a setting taken from the model): not shown with --quiet.
template <typename... Args>
void print_note(fmt::format_string<Args...> format, Args&&... args) noexcept {
  if (verbosity() >= Verbosity::normal) print_stderr(format, std::forward<Args>(args)...);
}

// Detail on stderr shown only with --verbose.
template <typename... Args>
void print_verbose(fmt::format_string<Args...> format, Args&&... args) noexcept {
  if (verbosity() >= Verbosity::verbose) print_stderr(format, std::forward<Args>(args)...);
}

}  // namespace maskgit
