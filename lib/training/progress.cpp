#include "training/progress.h"

#include <fmt/format.h>

#include <algorithm>

namespace maskgit {

ProgressWindow::Summary ProgressWindow::take(int64_t steps_left) {
  const auto now = std::chrono::steady_clock::now();
  const double seconds = std::max(1e-9, std::chrono::duration<double>(now - started_).count());
  Summary summary;
  if (steps_ > 0) {
    summary.mean_loss = loss_sum_ / static_cast<double>(steps_);
    summary.mean_metric = metric_sum_ / static_cast<double>(steps_);
    summary.eta_seconds = seconds / static_cast<double>(steps_) * static_cast<double>(steps_left);
  }
  summary.items_per_second = static_cast<double>(items_) / seconds;
  *this = ProgressWindow();
  return summary;
}

std::string format_duration(double seconds) {
  const auto total = static_cast<int64_t>(seconds + 0.5);
  if (total >= 3600) return fmt::format("{}h{:02}m", total / 3600, (total % 3600) / 60);
  if (total >= 60) return fmt::format("{}m{:02}s", total / 60, total % 60);
  return fmt::format("{}s", total);
}

}  // namespace maskgit
