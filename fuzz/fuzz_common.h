#pragma once
// Shared by the libFuzzer harnesses (fuzz/README in the top-level README, "Fuzzing").
//
// Each harness feeds one input to one loader. A loader may refuse an input only with the
// exception its header documents (maskgit::Error(bad_input) naming the file, for most); any
// other exception, a crash, a sanitizer report, a huge allocation or a hang is a finding.
// Torch-free: harnesses of torch-free loaders do not pay for LibTorch's headers.
#include <cxxabi.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <memory>
#include <string>
#include <typeinfo>

#include "common/error.h"

namespace maskgit::fuzz {

inline std::string as_string(const uint8_t* data, size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

// The dynamic type of the exception being handled, demangled ("c10::Error").
inline std::string current_exception_type() {
  const std::type_info* type = abi::__cxa_current_exception_type();
  if (!type) return "unknown";
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(abi::__cxa_demangle(type->name(), nullptr, nullptr, &status),
                                               std::free);
  return status == 0 && name ? name.get() : type->name();
}

// Reports a finding and aborts, which libFuzzer records as a crash (and saves the input).
[[noreturn]] inline void finding(const std::string& what) {
  std::fprintf(stderr, "\n==== FUZZ FINDING: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

// Call from a catch (...) block: anything but the documented error is a finding.
[[noreturn]] inline void unexpected_exception(const char* loader) {
  std::string message;
  try {
    throw;
  } catch (const std::exception& e) {
    message = e.what();
  } catch (...) {
    message = "(not a std::exception)";
  }
  finding(std::string(loader) + " threw " + current_exception_type() + " instead of maskgit::Error: " + message);
}

// The documented refusal: maskgit::Error with exit code bad_input whose message names `source`.
inline void check_bad_input(const Error& error, const std::string& source, const char* loader) {
  const std::string message = error.what();
  if (error.code() != ExitCode::bad_input)
    finding(std::string(loader) + " refused the input with exit code " +
            std::to_string(static_cast<int>(error.code())) + " instead of bad_input (3): " + message);
  if (message.find(source) == std::string::npos)
    finding(std::string(loader) + " refused the input without naming \"" + source + "\": " + message);
}

// A scratch directory of this process, for loaders that only read paths: in /dev/shm when
// there is one, so that no input touches a disk; removed at exit.
inline const std::string& scratch_directory() {
  struct Scratch {
    std::string path;
    Scratch() {
      std::error_code error;
      const std::filesystem::path base =
          std::filesystem::is_directory("/dev/shm", error) ? "/dev/shm" : std::filesystem::temp_directory_path();
      path = (base / ("maskgit-fuzz-" + std::to_string(::getpid()))).string();
      std::filesystem::create_directories(path);
    }
    ~Scratch() {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
  };
  static const Scratch scratch;
  return scratch.path;
}

// Writes the input to `name` in the scratch directory (replacing it) and returns its path.
inline std::string write_scratch_file(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = scratch_directory() + "/" + name;
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (!file) finding("cannot create the scratch file " + path);
  const bool ok = std::fwrite(data, 1, size, file) == size;
  if (std::fclose(file) != 0 || !ok) finding("cannot write the scratch file " + path);
  return path;
}

}  // namespace maskgit::fuzz
