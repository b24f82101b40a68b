#include "cli/progress.h"
#include "common/console.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <utility>

namespace maskgit {

ProgressCounter::ProgressCounter(std::string label, int64_t total)
    : label_(std::move(label)), total_(total), terminal_(isatty(fileno(stderr)) != 0) {}

ProgressCounter::~ProgressCounter() {
  if (line_open_) print_stderr("\n");
}

void ProgressCounter::update(int64_t done) {
  if (verbosity() == Verbosity::quiet) return;
  if (terminal_) {
    print_stderr("\r{} {}/{}", label_, done, total_);
    line_open_ = true;
    return;
  }
  const int64_t tenth = total_ > 0 ? done * 10 / total_ : 10;
  if (tenth == last_tenth_ && done != total_) return;
  last_tenth_ = tenth;
  print_stderr("{} {}/{}\n", label_, done, total_);
}

}  // namespace maskgit
