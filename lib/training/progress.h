#pragma once
// Running means and throughput between two progress lines, shared by the trainers.
#include <chrono>
#include <cstdint>
#include <string>

namespace maskgit {

class ProgressWindow {
 public:
  struct Summary {
    double mean_loss = 0, mean_metric = 0, items_per_second = 0, eta_seconds = 0;
  };
  ProgressWindow() : started_(std::chrono::steady_clock::now()) {}
  void add(double loss, double metric, int64_t items) {
    loss_sum_ += loss;
    metric_sum_ += metric;
    items_ += items;
    ++steps_;
  }
  // Summarises and restarts the window; ETA from this window's step rate.
  Summary take(int64_t steps_left);

 private:
  std::chrono::steady_clock::time_point started_;
  double loss_sum_ = 0, metric_sum_ = 0;
  int64_t items_ = 0, steps_ = 0;
};

// "1h02m", "3m05s", "12s".
std::string format_duration(double seconds);

}  // namespace maskgit
