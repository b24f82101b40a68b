#include "cli/common.h"
#include "common/console.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <c10/util/Exception.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <set>

#include "cli/argument_flags.h"
#include "common/error.h"
#include "io/atomic_file.h"
#include "io/image.h"
#include "model/model_dir.h"
#include "runtime/allocator.h"
#include "runtime/threads.h"

namespace maskgit {

CLI::Validator finite_range(double low, double high, bool exclude_low) {
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        double value = 0;
        if (!CLI::detail::lexical_cast(text, value) || !std::isfinite(value))
          return fmt::format("\"{}\" is not a finite number", text);
        if (value < low || value > high || (exclude_low && value == low))
          return fmt::format("{} is out of range ({}{:g} to {:g})", text, exclude_low ? "above " : "", low, high);
        return std::string();
      },
      fmt::format("{}{:g}..{:g}", exclude_low ? ">" : "", low, high));
}

void check_seed_range(uint64_t seed, int64_t count, const std::string& flag) {
  if (count > 1 && seed > std::numeric_limits<uint64_t>::max() - static_cast<uint64_t>(count - 1))
    throw_usage(fmt::format("{}: {} + {} images would pass the largest seed, 18446744073709551615", flag, seed, count));
}

CLI::Validator non_empty() {
  return CLI::Validator([](std::string& text) { return text.empty() ? std::string("empty value") : std::string(); },
                        "");
}

CLI::Validator image_limit() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        long long value = 0;
        if (!CLI::detail::lexical_cast(text, value) || !(value == -1 || (value >= 1 && value <= (1LL << 31))))
          return fmt::format("\"{}\" is not -1 (all) or a count from 1 to 2147483648", text);
        return std::string();
      },
      "-1 or 1..2^31");
}

void check_grid_size(int64_t count, int64_t columns, int64_t height, int64_t width, int64_t scale,
                     const std::string& flag) {
  constexpr int64_t kGap = 2;  // tile_images' padding
  const int64_t rows = (count + columns - 1) / columns;
  const int64_t grid_width = columns * (width * scale + kGap) + kGap;
  const int64_t grid_height = rows * (height * scale + kGap) + kGap;
  if (grid_width > kMaxImageSide || grid_height > kMaxImageSide)
    throw_usage(fmt::format("{}: the picture would be {}x{}, more than {} pixels a side (lower --grid-scale, or "
                            "fewer images)", flag, grid_width, grid_height, kMaxImageSide));
}

void prepare_output_pattern(const std::string& pattern, int64_t count, const std::string& flag) {
  try {
    validate_output_pattern(pattern, count);
  } catch (const InvalidArgument& e) {
    throw_usage(fmt::format("{}: {}", flag, e.message()));  // this pattern's own flag (--output, --originals)
  }
  std::set<std::string> prepared_folders;
  for (int64_t i = 0; i < count; ++i) {
    const std::string path = format_output_path(pattern, i);
    const std::string folder = std::filesystem::path(path).parent_path().string();
    struct stat info {};
    const bool exists = ::lstat(path.c_str(), &info) == 0;  // a dangling link exists too
    // A new file in a folder already probed needs nothing more.
    if (!exists && prepared_folders.count(folder)) continue;
    prepare_output_file(path, flag);
    if (!exists) prepared_folders.insert(folder);
  }
}

void add_runtime_options(ToolOptions& cli, RuntimeOptions& options) {
  cli.add("device", options.device);
  cli.add("threads", options.threads);
}

torch::Device apply_runtime_options(const RuntimeOptions& options) {
  keep_freed_memory_for_reuse();
  configure_cpu_threads(options.threads);
  if (options.device == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  torch::Device device(torch::kCPU);
  try {
    device = torch::Device(options.device);
  } catch (const std::exception&) {
    throw_usage(fmt::format("--device: \"{}\" is not auto, cpu, cuda or cuda:N", options.device));
  }
  if (device.is_cuda() && !torch::cuda::is_available())
    throw_usage(fmt::format("--device: {} requested, but this build or machine has no CUDA", options.device));
  if (!device.is_cuda() && !device.is_cpu())
    throw_usage(fmt::format("--device: \"{}\" is not supported (cpu or cuda)", options.device));
  return device;
}

void add_model_option(ToolOptions& cli, std::string& model_dir) {
  model_dir = default_model_dir();
  cli.add("model", model_dir);
}

int run_tool(CLI::App& app, int argc, char** argv, const std::function<void()>& body) {
  const std::string name = app.get_name();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    print_stderr("{}: error: {} (see --help)\n", name, e.what());
    return static_cast<int>(ExitCode::usage);
  }
  try {
    body();
    flush_stdout();  // a result that never reached stdout is a failure (exit 4), not a success
    return 0;
  } catch (const InvalidArgument& e) {
    print_stderr("{}: error: {}\n", name, describe_invalid_argument(e.argument(), e.message(), name));
    return static_cast<int>(e.code());
  } catch (const AlreadyReported& e) {
    return static_cast<int>(e.code());
  } catch (const Error& e) {
    print_stderr("{}: error: {}\n", name, e.what());
    return static_cast<int>(e.code());
  } catch (const c10::Error& e) {
    // LibTorch messages carry a C++ backtrace; the first line is the useful part.
    const std::string message = e.what_without_backtrace();
    print_stderr("{}: error: {}\n", name, message.substr(0, message.find('\n')));
    return static_cast<int>(ExitCode::failure);
  } catch (const std::exception& e) {
    print_stderr("{}: error: {}\n", name, e.what());
    return static_cast<int>(ExitCode::failure);
  }
}

}  // namespace maskgit
