#include "training/interrupt.h"

#include <atomic>
#include <csignal>

namespace maskgit {
namespace {

std::atomic<bool> g_interrupted{false};

extern "C" void on_interrupt_signal(int signal_number) {
  if (g_interrupted.exchange(true)) {
    std::signal(signal_number, SIG_DFL);
    std::raise(signal_number);
  }
}

}  // namespace

void install_interrupt_handlers() {
  std::signal(SIGINT, on_interrupt_signal);
  std::signal(SIGTERM, on_interrupt_signal);
}

bool interrupt_requested() { return g_interrupted.load(); }

void request_interrupt(bool requested) { g_interrupted.store(requested); }

}  // namespace maskgit
