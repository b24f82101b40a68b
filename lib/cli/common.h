#pragma once
// Option groups shared by several tools, defined once, and the one wrapper every main uses
// to turn exceptions into a single "tool: message" line and a documented exit code.
#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <functional>
#include <string>

#include "cli/options.h"
#include "cli/usage.h"

namespace maskgit {

struct RuntimeOptions {
  std::string device = "auto";
  int threads = 0;  // 0: all hardware threads
};

// A number in [low, high] (above `low` when exclude_low), NaN and infinities refused, with a
// short message quoting the user's text (never a 300-digit expansion of it).
CLI::Validator finite_range(double low, double high, bool exclude_low = false);

// Image i of a run uses seed + i: refuses (Error(usage) naming `flag`) a first seed whose last
// image, seed + count - 1, would pass 2^64 - 1 and wrap around to seeds already used.
void check_seed_range(uint64_t seed, int64_t count, const std::string& flag);

// Refuses an empty value (an unset shell variable must not silently mean "the default").
CLI::Validator non_empty();

// A count of dataset images: -1 (all) or 1..2^31.
CLI::Validator image_limit();

// Before any work: a --grid picture of `count` height × width images in `columns` columns,
// each enlarged `scale` times with tile_images' 2-pixel gaps, must fit the largest PNG side
// (kMaxImageSide). Error(usage) naming `flag` and --grid-scale otherwise.
void check_grid_size(int64_t count, int64_t columns, int64_t height, int64_t width, int64_t scale,
                     const std::string& flag = "--grid");

// validate_output_pattern (io/image.h), then prepare_output_file (io/atomic_file.h) for every
// one of the `count` paths (each folder probed once), before any work: Error(usage) naming
// `flag` for a bad pattern, Error(io_error) naming the flag and path for a destination that
// cannot be written.
void prepare_output_pattern(const std::string& pattern, int64_t count, const std::string& flag);

// --device auto|cpu|cuda|cuda:N and -t/--threads N (cli/options.h's table).
void add_runtime_options(ToolOptions& cli, RuntimeOptions& options);
// Applies --threads and resolves --device; Error(usage) if CUDA is asked for but absent.
torch::Device apply_runtime_options(const RuntimeOptions& options);

// -m/--model DIR, defaulting to $MASKGIT_MODEL, else the shipped model.
void add_model_option(ToolOptions& cli, std::string& model_dir);

// Parses argv into `app` and runs `body`. Returns the process exit code: 0 on success (and
// for --help), 2 for bad flags, and the code carried by a maskgit::Error otherwise. Every
// failure prints exactly one line "<app name>: error: <message>" on stderr; for the library's
// InvalidArgument the message is "<flag>: <what is wrong>", the flag found by
// flag_for_argument (cli/argument_flags.h).
int run_tool(CLI::App& app, int argc, char** argv, const std::function<void()>& body);

}  // namespace maskgit
