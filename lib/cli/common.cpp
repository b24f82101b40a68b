#include "cli/common.h"

#include <fmt/format.h>

#include <c10/util/Exception.h>

#include "common/error.h"
#include "model/model_dir.h"
#include "runtime/allocator.h"
#include "runtime/threads.h"

namespace maskgit {

void add_runtime_options(CLI::App& app, RuntimeOptions& options) {
  app.add_option("--device", options.device,
                 "Where to run: auto (CUDA when this build and machine have it, else CPU), cpu, cuda, cuda:N")
      ->capture_default_str();
  app.add_option("--threads", options.threads,
                 "CPU threads for LibTorch and BLAS; 0 = OMP_NUM_THREADS if set, else automatic: the CPUs this "
                 "process may use less those other processes keep busy, re-checked as it runs")
      ->capture_default_str()
      ->check(CLI::Range(0, 4096));
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

void add_model_option(CLI::App& app, std::string& model_dir) {
  model_dir = default_model_dir();
  app.add_option("-m,--model", model_dir, "Model directory (config.json + weights)")->capture_default_str();
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
    fmt::print(stderr, "{}: error: {} (see --help)\n", name, e.what());
    return static_cast<int>(ExitCode::usage);
  }
  try {
    body();
    return 0;
  } catch (const Error& e) {
    fmt::print(stderr, "{}: error: {}\n", name, e.what());
    return static_cast<int>(e.code());
  } catch (const c10::Error& e) {
    // LibTorch messages carry a C++ backtrace; the first line is the useful part.
    const std::string message = e.what_without_backtrace();
    fmt::print(stderr, "{}: error: {}\n", name, message.substr(0, message.find('\n')));
    return static_cast<int>(ExitCode::failure);
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}: error: {}\n", name, e.what());
    return static_cast<int>(ExitCode::failure);
  }
}

}  // namespace maskgit
