#pragma once
// Outputs and checkpoints are never left half-written, and nothing that is not ours is ever
// replaced (README "Guarantees"):
// - a new path or a regular file: the bytes go to a temporary file in the same directory,
//   which is flushed and then renamed over the destination (only ever over a regular file);
// - a symbolic link: the same, at the file it points to (the link stays a link);
// - a character device or a FIFO (/dev/null, /dev/stdout, a named pipe): written through;
// - anything else (a directory, a block device, a socket): refused.
#include <string>
#include <string_view>
#include <vector>

namespace maskgit {

// Writes `bytes` to `path` as above. Throws Error(io_error) naming the path on failure.
void write_file_atomic(const std::string& path, std::string_view bytes);

// Checks, before any work, that `path` can be written as above, creating its missing parent
// folders: its kind is allowed, its folder is writable (probed with a temporary file), and a
// FIFO has a reader. Throws Error(io_error) naming the path (and `flag`, when given) otherwise.
void prepare_output_file(const std::string& path, const std::string& flag = "");

// Reads a whole file. Throws Error(bad_input) naming the path if it is missing or unreadable.
std::string read_file_bytes(const std::string& path);

// Creates a directory and its parents if missing; throws Error(io_error) naming it on failure.
void ensure_directory(const std::string& path);

bool file_exists(const std::string& path);

}  // namespace maskgit
