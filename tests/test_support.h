#pragma once
// Small helpers shared by the test files (include before <catch2/catch.hpp>).
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

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

// The "step" of every record of a JSON-lines metrics log, in file order.
inline std::vector<int64_t> metrics_log_steps(const std::string& path) {
  std::ifstream log(path);
  std::string line;
  std::vector<int64_t> steps;
  while (std::getline(log, line)) steps.push_back(Json::parse(line).at("step").as_int());
  return steps;
}

}  // namespace maskgit::testing
