#pragma once
// Option groups shared by several tools, defined once, and the one wrapper every main uses
// to turn exceptions into a single "tool: message" line and a documented exit code.
#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <functional>
#include <string>

namespace maskgit {

struct RuntimeOptions {
  std::string device = "auto";
  int threads = 0;  // 0: all hardware threads
};

// --device auto|cpu|cuda|cuda:N and --threads N.
void add_runtime_options(CLI::App& app, RuntimeOptions& options);
// Applies --threads and resolves --device; Error(usage) if CUDA is asked for but absent.
torch::Device apply_runtime_options(const RuntimeOptions& options);

// -m/--model DIR, defaulting to the shipped model.
void add_model_option(CLI::App& app, std::string& model_dir);

// Parses argv into `app` and runs `body`. Returns the process exit code: 0 on success (and
// for --help), 2 for bad flags, and the code carried by a maskgit::Error otherwise. Every
// failure prints exactly one line "<app name>: error: <message>" on stderr.
int run_tool(CLI::App& app, int argc, char** argv, const std::function<void()>& body);

}  // namespace maskgit
