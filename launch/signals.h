// SIGTERM, SIGINT and SIGUSR1 during training ask for a clean stop: the trainer finishes the
// step, saves a checkpoint and exits 0. A second SIGINT or SIGTERM ends the process at once.
#pragma once

namespace tessera {

void signals_install();
// The first stop signal received (0: none).
int signals_received();
const char* signal_name(int sig);

}  // namespace tessera
