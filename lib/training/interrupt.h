#pragma once
// Ctrl-C / SIGTERM during training: the first signal asks the loop to save a checkpoint and
// stop at the next step boundary (every rank of a data-parallel run stops at the same step: the
// request travels with the step's reduction); a second one terminates at once.
namespace maskgit {

// `rank_of_group`: this process is one rank of a launched group (torchrun, --nproc). Launchers
// answer a terminal's Ctrl-C, which every rank receives too, by sending SIGTERM to the ranks:
// that SIGTERM must not cut short the checkpoint the SIGINT asked for. So a rank terminates at
// once only on a second signal of the kind it first received (Ctrl-C twice).
void install_interrupt_handlers(bool rank_of_group = false);
bool interrupt_requested();
// For tests: behave as if a signal had arrived (or clear it).
void request_interrupt(bool requested = true);

}  // namespace maskgit
