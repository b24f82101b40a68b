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

// A bad argument to a library function, in the library's own terms. The library never names a
// command-line flag: `argument()` is its own name for what was wrong, and `message()` says what
// is wrong with it without naming any flag. The command-line layer (lib/cli/argument_flags.h)
// maps the argument to the flag that set it and prints "<tool>: error: <flag>: <message>";
// what() is "<argument>: <message>" for other callers.
//
// Arguments are named after the library's parameters and option fields, in snake_case:
//   cfg_scale             DecodeOptions::guidance_scale on a model without a "no class" token
//   class                 a class id or class name (resolve_classes, class_token_for)
//   box                   a PixelBox that is empty or not inside the image
//   canvas, offset        placement_on_canvas's canvas size and the image's offset on it
//   left, right, top, bottom, margins   placement_from_margins's margins, one or all of them
//   output                an output file pattern (validate_output_pattern, format_output_path)
//   batch_size, epochs, log_every, checkpoint_every, learning_rate, limit, resume, overwrite
//                         the training options of those names (limit: the DatasetSpec's)
//   floor_count           ReferenceOptions::floor_count
//   files                 the sample files of read_labeled_sample_files
//   channels, image_size  a DatasetSpec's channels and width × height
//   images, ids           images or token grids too small for the model (plan_edit,
//                         complete_token_grids)
// and, for a setting the library reads from the environment, the variable's name
// (OMP_NUM_THREADS). The exit code is usage (2) unless given: a `resume` without a checkpoint
// to resume from is bad_input (3), as a missing input file is. A new name needs a row in
// lib/cli/argument_flags.cpp (tests/library_names_no_flags.sh checks).
class InvalidArgument : public Error {
 public:
  InvalidArgument(std::string argument, std::string message, ExitCode code = ExitCode::usage);
  const std::string& argument() const { return argument_; }
  // What is wrong, without the argument's name.
  const std::string& message() const { return message_; }

 private:
  std::string argument_;
  std::string message_;
};

// A failure that was already reported, by another process (a rank of a data-parallel run that
// printed its own error, or the ranks a launcher started): the tool exits with `code` and prints
// nothing more. what() says what happened, for callers that are not tools.
class AlreadyReported : public Error {
 public:
  AlreadyReported(ExitCode code, const std::string& what) : Error(code, what) {}
};

// Convenience throwers so call sites read as what went wrong. (Usage errors that name a flag
// belong to the command-line layer: lib/cli/usage.h.)
[[noreturn]] void throw_bad_input(const std::string& message);
[[noreturn]] void throw_io_error(const std::string& message);

}  // namespace maskgit
