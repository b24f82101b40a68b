#include "training/interrupt.h"

#include <atomic>
#include <csignal>

namespace maskgit {
namespace {

std::atomic<bool> g_interrupted{false};
std::atomic<int> g_first_signal{0};
std::atomic<bool> g_rank_of_group{false};

extern "C" void on_interrupt_signal(int signal_number) {
  int expected = 0;
  if (g_first_signal.compare_exchange_strong(expected, signal_number)) {
    g_interrupted.store(true);
    return;
  }
  if (g_rank_of_group.load() && expected != signal_number) return;  // the launcher's SIGTERM after Ctrl-C
  std::signal(signal_number, SIG_DFL);
  std::raise(signal_number);
}

}  // namespace

void install_interrupt_handlers(bool rank_of_group) {
  g_rank_of_group.store(rank_of_group);
  std::signal(SIGINT, on_interrupt_signal);
  std::signal(SIGTERM, on_interrupt_signal);
}

bool interrupt_requested() { return g_interrupted.load(); }

void request_interrupt(bool requested) {
  g_interrupted.store(requested);
  if (!requested) g_first_signal.store(0);
}

}  // namespace maskgit
