#include "io/atomic_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <system_error>
#include <utility>

#include "common/error.h"

namespace maskgit {
namespace fs = std::filesystem;

namespace {

[[noreturn]] void throw_write_failure(const std::string& path, int error_number) {
  throw_io_error(fmt::format("{}: cannot write: {}", path, std::strerror(error_number)));
}

// Writes everything or returns the errno of the first failure (0 on success).
int write_all(int fd, std::string_view bytes) {
  const char* next = bytes.data();
  size_t remaining = bytes.size();
  while (remaining > 0) {
    const ssize_t written = ::write(fd, next, remaining);
    if (written < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    next += written;
    remaining -= static_cast<size_t>(written);
  }
  return 0;
}

}  // namespace

void sync_parent_directory(const std::string& path) {
  std::string directory = fs::path(path).parent_path().string();
  if (directory.empty()) directory = ".";
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

namespace {

enum class Destination { create, replace_regular, write_through };

// The path to write for `path`: itself, unless it is a symbolic link, then the file the link
// finally names (realpath for an existing file; the links followed by hand, at most 40 as the
// kernel does, for a link to a file not made yet).
std::string resolve_links(const std::string& path) {
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0 || !S_ISLNK(info.st_mode)) return path;
  if (::stat(path.c_str(), &info) == 0) {
    // Devices and pipes (also /dev/stdout → /proc/self/fd/1 → "pipe:[…]") are opened through
    // the link; only a regular file needs its real name, to put the temporary beside it.
    if (!S_ISREG(info.st_mode)) return path;
    std::error_code error;
    const fs::path real = fs::canonical(path, error);
    if (error) throw_io_error(fmt::format("{}: cannot resolve the symbolic link: {}", path, error.message()));
    return real.string();
  }
  std::string current = path;
  for (int depth = 0; depth < 40; ++depth) {
    if (::lstat(current.c_str(), &info) != 0 || !S_ISLNK(info.st_mode)) return current;
    std::error_code error;
    const fs::path target = fs::read_symlink(current, error);
    if (error) throw_io_error(fmt::format("{}: cannot read the symbolic link: {}", path, error.message()));
    current = (target.is_absolute() ? target : fs::path(current).parent_path() / target).string();
  }
  throw_io_error(fmt::format("{}: too many levels of symbolic links", path));
}

// What writing `path` means; throws Error(io_error) for kinds that are never written.
Destination classify(const std::string& path, const std::string& label) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    if (errno == ENOENT) return Destination::create;
    throw_io_error(fmt::format("{}: cannot write: {}", label, std::strerror(errno)));
  }
  if (S_ISREG(info.st_mode)) return Destination::replace_regular;
  if (S_ISCHR(info.st_mode) || S_ISFIFO(info.st_mode)) return Destination::write_through;
  if (S_ISDIR(info.st_mode)) throw_io_error(fmt::format("{}: is a directory", label));
  throw_io_error(fmt::format("{}: is neither a regular file, a character device nor a pipe; not written", label));
}

// Creates the missing folders above `path`; errors name the output (`label`) and the folder.
void ensure_parent_directory(const std::string& path, const std::string& label) {
  const std::string directory = fs::path(path).parent_path().string();
  if (directory.empty()) return;
  std::error_code error;
  fs::create_directories(directory, error);
  if (error)
    throw_io_error(fmt::format("{}: cannot create the folder {}: {}", label, directory, error.message()));
  if (!fs::is_directory(directory, error))
    throw_io_error(fmt::format("{}: cannot create the folder {}: it exists and is not a folder", label, directory));
}

// "/dev/stdout", "/dev/stderr", "/dev/fd/N", "/proc/self/fd/N": this process's own descriptor N,
// written as it is (at its offset, whatever file or pipe it is), never reopened or replaced;
// -1 for other paths.
int own_descriptor(const std::string& path) {
  if (path == "/dev/stdout") return 1;
  if (path == "/dev/stderr") return 2;
  for (const char* prefix : {"/dev/fd/", "/proc/self/fd/"}) {
    const std::string head(prefix);
    if (path.size() > head.size() && path.size() <= head.size() + 4 && path.compare(0, head.size(), head) == 0 &&
        path.find_first_not_of("0123456789", head.size()) == std::string::npos)
      return std::stoi(path.substr(head.size()));
  }
  return -1;
}

// FIFOs opened by prepare_output_file, kept open until written: closing them in between would
// end their reader's input.
std::map<std::string, int>& prepared_fifos() {
  static std::map<std::string, int> fifos;
  return fifos;
}

// Opens a character device or FIFO for writing without blocking on a FIFO with no reader.
int open_write_through(const std::string& path, const std::string& label) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    if (errno == ENXIO) throw_io_error(fmt::format("{}: a named pipe with no reader", label));
    throw_write_failure(label, errno);
  }
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

// Passes pieces of a file to a descriptor: pieces under kChunk are gathered into one buffer
// of at most kChunk bytes, larger ones written as they come. A write failure throws
// Error(io_error) naming `label`.
class ChunkedWriter {
 public:
  static constexpr size_t kChunk = size_t{1} << 20;

  ChunkedWriter(int fd, const std::string& label) : fd_(fd), label_(label) {}

  void put(std::string_view bytes) {
    if (bytes.size() >= kChunk) {
      flush();
      write_or_throw(bytes);
      return;
    }
    if (buffer_.size() + bytes.size() > kChunk) flush();
    if (buffer_.capacity() < kChunk) buffer_.reserve(kChunk);
    buffer_.append(bytes.data(), bytes.size());
  }

  void flush() {
    if (buffer_.empty()) return;
    write_or_throw(buffer_);
    buffer_.clear();
  }

 private:
  void write_or_throw(std::string_view bytes) {
    const int error_number = write_all(fd_, bytes);
    if (error_number != 0) throw_write_failure(label_, error_number);
  }

  int fd_;
  const std::string& label_;
  std::string buffer_;
};

// Runs `produce` with a sink writing to `fd`, then flushes.
void produce_into(int fd, const std::function<void(const ByteSink&)>& produce, const std::string& label) {
  ChunkedWriter writer(fd, label);
  const ByteSink sink = [&writer](std::string_view bytes) { writer.put(bytes); };
  produce(sink);
  writer.flush();
}

void write_through(const std::string& path, const std::function<void(const ByteSink&)>& produce,
                   const std::string& label) {
  auto& fifos = prepared_fifos();
  const auto prepared = fifos.find(path);
  int fd = -1;
  if (prepared != fifos.end()) {
    fd = prepared->second;
    fifos.erase(prepared);
  } else {
    fd = open_write_through(path, label);
  }
  try {
    produce_into(fd, produce, label);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
}

void write_replacing(const std::string& path, const std::function<void(const ByteSink&)>& produce,
                     const std::string& label) {
  // The temporary lives beside the destination so that rename() stays within one
  // filesystem and is atomic; the pid keeps concurrent writers from sharing it.
  ensure_parent_directory(path, label);
  const std::string temp_path = fmt::format("{}.tmp.{}", path, static_cast<long>(::getpid()));
  int fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0 && errno == EEXIST) {  // left by a killed process that had our pid
    ::unlink(temp_path.c_str());
    fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  }
  if (fd < 0) throw_write_failure(label, errno);
  // A replaced file keeps its permissions (a 0600 file stays private).
  struct stat old {};
  if (::stat(path.c_str(), &old) == 0 && S_ISREG(old.st_mode)) ::fchmod(fd, old.st_mode & 07777);

  try {
    produce_into(fd, produce, label);
  } catch (...) {  // a write failure or the producer's own: nothing is replaced, nothing left
    ::close(fd);
    ::unlink(temp_path.c_str());
    throw;
  }
  int error_number = 0;
  if (::fsync(fd) != 0) error_number = errno;
  // close() can report a deferred write error (NFS, quota), so its result counts too.
  if (::close(fd) != 0 && error_number == 0) error_number = errno;
  // Only ever over a regular file (or nothing): re-checked just before the rename.
  struct stat info {};
  if (error_number == 0 && ::lstat(path.c_str(), &info) == 0 && !S_ISREG(info.st_mode)) {
    ::unlink(temp_path.c_str());
    throw_io_error(fmt::format("{}: is no longer a regular file; not replaced", label));
  }
  if (error_number == 0 && std::rename(temp_path.c_str(), path.c_str()) != 0) error_number = errno;
  if (error_number != 0) {
    ::unlink(temp_path.c_str());
    throw_write_failure(label, error_number);
  }
  sync_parent_directory(path);
}

}  // namespace

void write_file_atomic(const std::string& path, std::string_view bytes) {
  write_file_atomic_streamed(path, [bytes](const ByteSink& sink) { sink(bytes); });
}

void write_file_atomic_streamed(const std::string& path, const std::function<void(const ByteSink&)>& produce) {
  if (const int own = own_descriptor(path); own >= 0) {
    produce_into(own, produce, path);
    return;
  }
  const std::string target = resolve_links(path);
  switch (classify(target, path)) {
    case Destination::write_through: write_through(target, produce, path); return;
    case Destination::create:
    case Destination::replace_regular: write_replacing(target, produce, path); return;
  }
}

void prepare_output_file(const std::string& path, const std::string& flag, bool create_folders) {
  const std::string label = flag.empty() ? path : fmt::format("{} {}", flag, path);
  if (path.empty()) throw_io_error(fmt::format("{}: the output path is empty", flag.empty() ? "output" : flag));
  if (const int own = own_descriptor(path); own >= 0) {
    struct stat info {};
    if (::fstat(own, &info) != 0) throw_io_error(fmt::format("{}: descriptor {} is not open", label, own));
    return;
  }
  const std::string file_name = fs::path(path).filename().string();
  if (file_name.empty() || file_name == "." || file_name == "..")
    throw_io_error(fmt::format("{}: names a folder, not a file", label));
  const std::string target = resolve_links(path);
  if (classify(target, label) == Destination::write_through) {
    struct stat info {};
    if (::stat(target.c_str(), &info) == 0 && S_ISFIFO(info.st_mode)) {
      // Opened now (a FIFO without a reader fails here, before any work) and kept open for
      // the write: closing it in between would end its reader's input.
      if (!prepared_fifos().count(target)) prepared_fifos()[target] = open_write_through(target, label);
    } else {
      ::close(open_write_through(target, label));
    }
    return;
  }
  if (!create_folders) {
    // The nearest folder that exists must be one (not a file) and take a new entry.
    fs::path folder = fs::path(target).parent_path();
    std::error_code error;
    while (!folder.empty() && !fs::exists(folder, error)) folder = folder.parent_path();
    if (folder.empty()) folder = ".";
    if (!fs::is_directory(folder, error))
      throw_io_error(fmt::format("{}: {} is not a folder", label, folder.string()));
    if (::access(folder.c_str(), W_OK | X_OK) != 0) throw_write_failure(label, errno);
    if (folder != fs::path(target).parent_path() && !fs::path(target).parent_path().empty()) return;
  } else {
    ensure_parent_directory(target, label);
  }
  // Probe with the very name the temporary will have: the folder must take a new file of that
  // name (writable, not full of inodes, the name not too long).
  const std::string probe = fmt::format("{}.tmp.{}", target, static_cast<long>(::getpid()));
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0 && errno != EEXIST) throw_write_failure(label, errno);
  if (fd >= 0) {
    ::close(fd);
    ::unlink(probe.c_str());
  }
}

namespace {

// Opens `path` for reading under read_file_bytes's policy; returns the descriptor (blocking,
// close-on-exec) and stores the size at opening in `size`.
int open_regular_file(const std::string& path, uint64_t max_bytes, uint64_t* size) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below anyway).
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw_bad_input(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int error_number = errno;
    ::close(fd);
    throw_bad_input(fmt::format("{}: cannot open: {}", path, std::strerror(error_number)));
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    throw_bad_input(fmt::format("{}: {}", path, S_ISDIR(info.st_mode) ? "is a directory"
                                                                     : "not a regular file (a device, pipe or socket)"));
  }
  if (static_cast<uint64_t>(info.st_size) > max_bytes) {
    ::close(fd);
    throw_bad_input(fmt::format("{}: {} bytes, more than the {} accepted for this kind of file", path,
                                static_cast<uint64_t>(info.st_size), max_bytes));
  }
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  *size = static_cast<uint64_t>(info.st_size);
  return fd;
}

}  // namespace

std::string read_file_bytes(const std::string& path, uint64_t max_bytes) {
  uint64_t size = 0;
  const int fd = open_regular_file(path, max_bytes, &size);
  std::string bytes;
  if (size > 0) bytes.reserve(static_cast<size_t>(size));
  char buffer[1 << 16];
  while (true) {
    const ssize_t count = ::read(fd, buffer, sizeof buffer);
    if (count == 0) break;
    if (count < 0) {
      if (errno == EINTR) continue;
      const int error_number = errno;
      ::close(fd);
      throw_bad_input(fmt::format("{}: cannot read: {}", path, std::strerror(error_number)));
    }
    bytes.append(buffer, static_cast<size_t>(count));
    if (bytes.size() > max_bytes) {  // the file grew while being read
      ::close(fd);
      throw_bad_input(fmt::format("{}: more than the {} bytes accepted for this kind of file", path, max_bytes));
    }
  }
  ::close(fd);
  return bytes;
}

InputFile::InputFile(const std::string& path, uint64_t max_bytes) : path_(path) {
  fd_ = open_regular_file(path, max_bytes, &size_);
  // A hint only: readers of large files go through them front to back.
  ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

InputFile::InputFile(InputFile&& other) noexcept
    : path_(std::move(other.path_)), fd_(other.fd_), size_(other.size_) {
  other.fd_ = -1;
}

InputFile& InputFile::operator=(InputFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(other.path_);
    fd_ = other.fd_;
    size_ = other.size_;
    other.fd_ = -1;
  }
  return *this;
}

bool InputFile::read_at(uint64_t offset, void* destination, size_t count) const {
  char* next = static_cast<char*>(destination);
  while (count > 0) {
    // Linux moves at most 0x7ffff000 bytes a call; smaller pieces keep each call bounded.
    const size_t piece = std::min(count, size_t{1} << 30);
    const ssize_t got = ::pread(fd_, next, piece, static_cast<off_t>(offset));
    if (got == 0) return false;
    if (got < 0) {
      if (errno == EINTR) continue;
      throw_bad_input(fmt::format("{}: cannot read: {}", path_, std::strerror(errno)));
    }
    next += got;
    offset += static_cast<uint64_t>(got);
    count -= static_cast<size_t>(got);
  }
  return true;
}

void ensure_directory(const std::string& path) {
  // "" is the current directory (the parent of a bare file name): nothing to create.
  if (path.empty()) return;
  std::error_code error;
  fs::create_directories(path, error);
  if (error)
    throw_io_error(fmt::format("{}: cannot create directory: {}", path, error.message()));
  if (!fs::is_directory(path, error))
    throw_io_error(fmt::format("{}: cannot create directory: it exists and is not a directory", path));
}

bool file_exists(const std::string& path) {
  std::error_code error;
  return fs::exists(path, error);
}

}  // namespace maskgit
