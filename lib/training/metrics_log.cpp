#include "training/metrics_log.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "common/error.h"
#include "io/atomic_file.h"

namespace maskgit {

MetricsLog::MetricsLog(const std::string& path, int64_t resume_step) : path_(path) {
  std::string kept;
  if (resume_step >= 0 && file_exists(path)) {
    std::istringstream lines(read_file_bytes(path));
    std::string line;
    while (std::getline(lines, line)) {
      try {
        const Json record = parse_json(line);
        if (const Json* step = json_find(record, "step")) {
          // A step that is not an integer (a damaged line) is dropped like a line cut short.
          const std::optional<int64_t> number = json_as_int64(*step);
          if (!number || *number > resume_step) continue;
        }
      } catch (const std::exception&) {
        continue;  // a line cut short by a kill
      }
      kept += line + "\n";
    }
  }
  write_file_atomic(path, kept);
  file_ = std::fopen(path.c_str(), "a");
  if (!file_) throw_io_error(fmt::format("{}: cannot open metrics log: {}", path, std::strerror(errno)));
}

MetricsLog::~MetricsLog() {
  if (file_) std::fclose(file_);
}

void MetricsLog::write(const Json& record) {
  const std::string line = dump_json(record) + "\n";
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0)
    throw_io_error(fmt::format("{}: cannot write metrics log: {}", path_, std::strerror(errno)));
}

}  // namespace maskgit
