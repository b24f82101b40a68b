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
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace maskgit {

// Writes `bytes` to `path` as above. Throws Error(io_error) naming the path on failure.
void write_file_atomic(const std::string& path, std::string_view bytes);

// Receives the bytes of a file being written, in order, in pieces of any size. Throws
// Error(io_error) naming the destination when they cannot be written.
using ByteSink = std::function<void(std::string_view)>;

// Writes to `path`, as write_file_atomic does, the bytes that `produce` passes to its sink, so
// that a large file is never gathered in memory: small pieces are gathered up to 1 MiB, larger
// ones written as they come. For a new path or a regular file the temporary is renamed over
// the destination once `produce` returns; if it throws, the temporary is removed, the
// destination is left as it was and the exception propagates. A device, FIFO or own descriptor
// is written through as the bytes come (what was passed before an exception has been
// written), so `produce` should check everything it can before its first byte. Throws
// Error(io_error) naming the path on a write failure.
void write_file_atomic_streamed(const std::string& path, const std::function<void(const ByteSink&)>& produce);

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

// A regular file open for reading at given offsets (pread), for readers that take only the
// parts they need of a large file instead of reading it whole. Opening follows read_file_bytes's
// policy and messages: Error(bad_input) naming the path if it is missing, unreadable, larger
// than `max_bytes`, or not a regular file (never read, never waited on). Movable, not copyable;
// the descriptor is closed on destruction.
class InputFile {
 public:
  explicit InputFile(const std::string& path, uint64_t max_bytes = kMaxInputFileBytes);
  ~InputFile();
  InputFile(InputFile&& other) noexcept;
  InputFile& operator=(InputFile&& other) noexcept;
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  const std::string& path() const { return path_; }
  // The size in bytes when the file was opened.
  uint64_t size() const { return size_; }
  // Reads exactly `count` bytes from byte `offset` into `destination`. Returns false when the
  // file ends first (it shrank after it was opened); throws Error(bad_input)
  // "<path>: cannot read: <reason>" on a read error.
  bool read_at(uint64_t offset, void* destination, size_t count) const;

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// After a rename into `path`'s folder, the directory entry itself must reach the disk for the
// new name to survive a power loss: fsyncs that folder. Best effort (some filesystems refuse
// fsync on directories); never throws.
void sync_parent_directory(const std::string& path);
// Creates a directory and its parents if missing; throws Error(io_error) naming it on failure.
void ensure_directory(const std::string& path);

bool file_exists(const std::string& path);

}  // namespace maskgit
