#include "training/interrupt.h"

#include <signal.h>

#include <atomic>
#include <csignal>

namespace maskgit {
namespace {

std::atomic<bool> g_interrupted{false};
std::atomic<bool> g_signalled{false};
std::atomic<int> g_first_signal{0};
std::atomic<long> g_first_sender{-1};
std::atomic<bool> g_rank_of_group{false};

extern "C" void on_interrupt_signal(int signal_number, siginfo_t* info, void* /*context*/) {
  const long sender = info != nullptr ? static_cast<long>(info->si_pid) : 0;
  if (!g_signalled.exchange(true)) {
    g_first_signal.store(signal_number);
    g_first_sender.store(sender);
    g_interrupted.store(true);
    return;
  }
  // A rank ignores a second signal from another sender (the launcher passing on what the
  // terminal or the scheduler sent every process): only a repeat stops it at once.
  if (g_rank_of_group.load() && (signal_number != g_first_signal.load() || sender != g_first_sender.load())) return;
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  sigaction(signal_number, &default_action, nullptr);
  raise(signal_number);
}

}  // namespace

void install_interrupt_handlers(bool rank_of_group) {
  g_rank_of_group.store(rank_of_group);
  struct sigaction action {};
  action.sa_sigaction = on_interrupt_signal;
  action.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

bool interrupt_requested() { return g_interrupted.load(); }

void request_interrupt(bool requested) {
  g_interrupted.store(requested);
  if (!requested) g_signalled.store(false);
}

}  // namespace maskgit
