#pragma once
// The training metrics log: one JSON object per line, appended as training goes. On resume
// the lines past the resumed step are dropped, so the log always describes one history.
#include <cstdint>
#include <cstdio>
#include <string>

#include "io/json.h"

namespace maskgit {

class MetricsLog {
 public:
  // Opens `path` for appending; when `resume_step` >= 0, first drops lines with step > it,
  // and when it is < 0 (a fresh run) starts the file empty.
  MetricsLog(const std::string& path, int64_t resume_step);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  void write(const Json& record);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace maskgit
