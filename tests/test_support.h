#pragma once
// Small helpers shared by the test files (include before <catch2/catch.hpp>).
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "common/error.h"
#include "io/json.h"

namespace maskgit::testing {

// An empty directory unique to this process: <tmp>/maskgit-<name>-<pid>.
inline std::filesystem::path fresh_temp_dir(const std::string& name) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("maskgit-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// A whole text file ("" when it cannot be read).
inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The "step" of every record of a JSON-lines metrics log, in file order.
inline std::vector<int64_t> metrics_log_steps(const std::string& path) {
  std::ifstream log(path);
  std::string line;
  std::vector<int64_t> steps;
  while (std::getline(log, line)) steps.push_back(parse_json(line).at("step").get<int64_t>());
  return steps;
}

// The InvalidArgument that `run` throws (argument, message, exit code); all empty (code ok)
// when it throws nothing. Any other exception passes through (and fails the test).
struct ThrownArgument {
  std::string argument;
  std::string message;
  ExitCode code = ExitCode::ok;
};
template <typename Run>
ThrownArgument invalid_argument_of(Run&& run) {
  try {
    run();
  } catch (const InvalidArgument& e) {
    return {e.argument(), e.message(), e.code()};
  }
  return {};
}

}  // namespace maskgit::testing
