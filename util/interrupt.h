// Ctrl-C (SIGINT) and SIGTERM during work that writes: the first signal asks the work to stop at
// its next safe point (before a training step, between the tensors of an export), where
// stop_if_interrupted throws an Error; unwinding then waits for a checkpoint being written and
// removes temporary directories, so the newest complete checkpoint stays intact and nothing
// half-written is left. A second signal ends the process at once. Commands that write nothing
// until their end (eval, generate) keep the default: the signal ends them.
#pragma once
#include <string>

namespace dsalign {

// For the lifetime of the object, SIGINT and SIGTERM set the flag instead of ending the process.
class InterruptScope {
 public:
  InterruptScope();
  ~InterruptScope();
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;
};

// The signal received since the scope began (SIGINT, SIGTERM), or 0.
int interrupt_signal();

// Throws an Error "interrupted by SIGINT <where>" when a signal was received.
void stop_if_interrupted(const std::string& where);

}  // namespace dsalign
