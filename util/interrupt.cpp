#include "util/interrupt.h"

#include <signal.h>

#include <csignal>
#include <cstring>

#include "util/error.h"

namespace dsalign {

namespace {

// A signal handler can only talk to the program through a global of this type.
volatile std::sig_atomic_t received = 0;
struct sigaction previous_int, previous_term;

void on_signal(int sig) {
  if (received) {  // the second one: the default action, now
    ::signal(sig, SIG_DFL);
    ::raise(sig);
    return;
  }
  received = sig;
}

}  // namespace

InterruptScope::InterruptScope() {
  received = 0;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, &previous_int);
  ::sigaction(SIGTERM, &sa, &previous_term);
}

InterruptScope::~InterruptScope() {
  ::sigaction(SIGINT, &previous_int, nullptr);
  ::sigaction(SIGTERM, &previous_term, nullptr);
  received = 0;
}

int interrupt_signal() { return received; }

void stop_if_interrupted(const std::string& where) {
  if (const int sig = received) fail("interrupted by ", sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal", " ", where);
}

}  // namespace dsalign
