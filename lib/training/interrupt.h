#pragma once
// Ctrl-C / SIGTERM during training: the first signal asks the loop to save a checkpoint and
// stop at the next step boundary (every rank of a data-parallel run stops at the same step: the
// request travels with the step's reduction); a second one terminates at once.
namespace maskgit {

// `rank_of_group`: this process is one rank of a launched group (torchrun, --nproc). Launchers
// pass on a terminal's Ctrl-C or a scheduler's SIGTERM, which may have reached every rank
// already, as a signal of their own: that second signal must not cut short the checkpoint the
// first asked for. So a rank stops at once only on a repeat of its first signal from the same
// sender (Ctrl-C twice, a launcher's second forward); a single process on any second signal.
void install_interrupt_handlers(bool rank_of_group = false);
bool interrupt_requested();
// For tests: behave as if a signal had arrived (or clear it).
void request_interrupt(bool requested = true);

}  // namespace maskgit
