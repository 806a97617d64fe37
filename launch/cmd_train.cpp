#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "launch/commands.h"
#include "launch/session.h"
#include "launch/trainer.h"
#include "runtime/error.h"

namespace tessera {

namespace {

// World size announced by the launcher (mpirun / srun), before any MPI call.
int launcher_world_size() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS"})
    if (const char* v = std::getenv(var)) return std::atoi(v);
  return 1;
}

}  // namespace

int cmd_train(int argc, char** argv) {
  std::string path;
  std::vector<std::string> overrides;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--set") && i + 1 < argc) {
      overrides.push_back(argv[++i]);
    } else if (!std::strncmp(argv[i], "--set=", 6)) {
      overrides.push_back(argv[i] + 6);
    } else if (argv[i][0] != '-' && path.empty()) {
      path = argv[i];
    } else {
      throw UserError(std::string("train: unexpected argument '") + argv[i] +
                      "' (usage: tessera train CONFIG.toml [--set section.key=value ...])");
    }
  }
  if (path.empty()) throw UserError("usage: tessera train CONFIG.toml [--set section.key=value ...]");
  RunConfig cfg = config_load(path, overrides);
  // Until the parallel runtime lands, several ranks would each run the whole job and race on
  // the same run directory: refuse instead.
  if (const int world = launcher_world_size(); world > 1)
    throw UserError("train: launched as " + std::to_string(world) +
                    " ranks, but this build trains on one process only; run it without mpirun/srun");
  session_resolve_vocab(cfg);
  auto dev = session_device(cfg);
  Trainer trainer(cfg, *dev);
  trainer.run();
  return 0;
}

}  // namespace tessera
