#include "io/atomic_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

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

// After the rename, the directory entry itself must reach the disk for the new file to
// survive a power loss. Best effort: some filesystems refuse fsync on directories.
void sync_parent_directory(const std::string& path) {
  std::string directory = fs::path(path).parent_path().string();
  if (directory.empty()) directory = ".";
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void write_file_atomic(const std::string& path, std::string_view bytes) {
  // The temporary lives beside the destination so that rename() stays within one
  // filesystem and is atomic; the pid keeps concurrent writers from sharing it.
  const std::string temp_path = fmt::format("{}.tmp.{}", path, static_cast<long>(::getpid()));
  const int fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) throw_write_failure(path, errno);

  int error_number = write_all(fd, bytes);
  if (error_number == 0 && ::fsync(fd) != 0) error_number = errno;
  // close() can report a deferred write error (NFS, quota), so its result counts too.
  if (::close(fd) != 0 && error_number == 0) error_number = errno;
  if (error_number == 0 && std::rename(temp_path.c_str(), path.c_str()) != 0) error_number = errno;
  if (error_number != 0) {
    ::unlink(temp_path.c_str());
    throw_write_failure(path, error_number);
  }
  sync_parent_directory(path);
}

std::string read_file_bytes(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_bad_input(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int error_number = errno;
    ::close(fd);
    throw_bad_input(fmt::format("{}: cannot open: {}", path, std::strerror(error_number)));
  }
  if (S_ISDIR(info.st_mode)) {
    ::close(fd);
    throw_bad_input(fmt::format("{}: is a directory", path));
  }

  std::string bytes;
  // The size is a hint only: pipes and /proc files report 0 and are read to the end anyway.
  if (S_ISREG(info.st_mode) && info.st_size > 0) bytes.reserve(static_cast<size_t>(info.st_size));
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
  }
  ::close(fd);
  return bytes;
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
