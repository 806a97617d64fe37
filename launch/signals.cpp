#include "launch/signals.h"

#include <csignal>
#include <initializer_list>

namespace tessera {
namespace {

volatile std::sig_atomic_t g_received = 0;

void on_signal(int sig) {
  if (g_received == 0) g_received = sig;
  if (sig != SIGUSR1) std::signal(sig, SIG_DFL);  // the second one is not caught
}

}  // namespace

void signals_install() {
  for (int sig : {SIGTERM, SIGINT, SIGUSR1}) std::signal(sig, on_signal);
}

int signals_received() { return g_received; }

const char* signal_name(int sig) {
  switch (sig) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGUSR1: return "SIGUSR1";
    default: return "a signal";
  }
}

}  // namespace tessera
