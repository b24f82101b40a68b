#pragma once
// A count of finished items on stderr ("sampled 128/1000"). On a terminal the line is
// rewritten in place; when stderr goes to a file or a pipe, whole lines are written instead,
// at every tenth of the total and at the end, so logs of batch runs stay readable. Nothing is
// printed with --quiet (console.h's verbosity).
#include <cstdint>
#include <string>

namespace maskgit {

class ProgressCounter {
 public:
  // `label` precedes the count, e.g. "maskgit-edit: results" → "maskgit-edit: results 64/1000".
  ProgressCounter(std::string label, int64_t total);
  ProgressCounter(const ProgressCounter&) = delete;
  ProgressCounter& operator=(const ProgressCounter&) = delete;
  ~ProgressCounter();

  void update(int64_t done);

 private:
  std::string label_;
  int64_t total_;
  bool terminal_;
  int64_t last_tenth_ = -1;
  bool line_open_ = false;  // a terminal line without its newline yet
};

}  // namespace maskgit
