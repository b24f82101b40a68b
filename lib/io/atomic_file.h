#pragma once
// Outputs and checkpoints are never left half-written: bytes go to a temporary file in the
// destination's directory, which is flushed and then renamed over the destination.
#include <string>
#include <string_view>

namespace maskgit {

// Writes `bytes` to `path` atomically. Throws Error(io_error) naming the path on failure.
void write_file_atomic(const std::string& path, std::string_view bytes);

// Reads a whole file. Throws Error(bad_input) naming the path if it is missing or unreadable.
std::string read_file_bytes(const std::string& path);

// Creates a directory and its parents if missing; throws Error(io_error) naming it on failure.
void ensure_directory(const std::string& path);

bool file_exists(const std::string& path);

}  // namespace maskgit
