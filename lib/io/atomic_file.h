#pragma once
// Outputs and checkpoints are never left half-written, and nothing that is not ours is ever
// replaced (README "Guarantees"):
// - a new path or a regular file: the bytes go to a temporary file in the same directory,
//   which is flushed and then renamed over the destination (only ever over a regular file);
// - a symbolic link: the same, at the file it points to (the link stays a link);
// - a character device or a FIFO (/dev/null, a named pipe): written through;
// - /dev/stdout, /dev/stderr, /dev/fd/N, /proc/self/fd/N: written to that descriptor as it is;
// - a replaced file keeps its permission bits (a hard link to it keeps the old content);
// - anything else (a directory, a block device, a socket): refused.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace maskgit {

// Writes `bytes` to `path` as above. Throws Error(io_error) naming the path on failure.
void write_file_atomic(const std::string& path, std::string_view bytes);

// Checks, before any work, that `path` can be written as above, creating its missing parent
// folders: its kind is allowed, it names a file (not "dir/", "." or ".."), a file of the
// temporary's name can be created in its folder, and a FIFO has a reader (the FIFO is opened
// now and kept open for the write). /dev/stdout, /dev/stderr, /dev/fd/N and /proc/self/fd/N
// are this process's own descriptors, written in place. Throws Error(io_error) naming the path
// (and `flag`, when given) otherwise.
// With create_folders false, missing folders are not made: the nearest existing one must be a
// writable folder (for tools that make them only once their inputs are known good).
void prepare_output_file(const std::string& path, const std::string& flag = "", bool create_folders = true);

// Reads a whole regular file of at most `max_bytes`. Throws Error(bad_input) naming the path
// if it is missing, unreadable, larger, or not a regular file (a directory, a device such as
// /dev/zero, a FIFO: never read, never waited on).
constexpr uint64_t kMaxInputFileBytes = uint64_t{16} << 30;
std::string read_file_bytes(const std::string& path, uint64_t max_bytes = kMaxInputFileBytes);

// Creates a directory and its parents if missing; throws Error(io_error) naming it on failure.
void ensure_directory(const std::string& path);

bool file_exists(const std::string& path);

}  // namespace maskgit
