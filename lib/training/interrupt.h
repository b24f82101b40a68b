#pragma once
// Ctrl-C / SIGTERM during training: the first signal asks the loop to save a checkpoint and
// stop at the next step boundary; a second one terminates at once.
namespace maskgit {

void install_interrupt_handlers();
bool interrupt_requested();
// For tests: behave as if a signal had arrived (or clear it).
void request_interrupt(bool requested = true);

}  // namespace maskgit
