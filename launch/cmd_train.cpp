#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "launch/commands.h"
#include "launch/layout.h"
#include "launch/session.h"
#include "launch/signals.h"
#include "launch/trainer.h"
#include "parallel/mpi_comm.h"
#include "runtime/error.h"

namespace tessera {

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
  // Several ranks when started by mpirun / srun; the layout comes from [parallel].
  std::unique_ptr<MpiWorld> world;
  if (launcher_world_size() > 1) world = std::make_unique<MpiWorld>(nullptr, nullptr);
  RunConfig cfg;
  std::unique_ptr<Device> dev;
  run_agreed(world.get(), [&] {
    cfg = config_load(path, overrides);
    session_resolve_vocab(cfg);
    validate_layout(cfg, Topology(world ? world->size() : 1, static_cast<int>(cfg.parallel.tp),
                                  static_cast<int>(cfg.parallel.pp), static_cast<int>(cfg.parallel.dp)));
    dev = session_device(cfg, world ? world->local_rank() : 0, world ? world->local_size() : 1,
                         world ? world->rank() : 0);
  });
  signals_install();
  if (!world) {
    Trainer(cfg, *dev).run();
    return 0;
  }
  try {
    Trainer trainer(cfg, *dev, world.get());
    trainer.run();
  } catch (const AgreedError&) {
    throw;  // every rank raised it: a clean exit on all of them
  } catch (const UserError& e) {
    // Seen by this rank only: the others may be waiting on it in a collective, so the whole
    // job ends now rather than hanging.
    std::fprintf(stderr, "tessera: error: rank %d: %s\n", world->rank(), e.what());
    world->abort(2);
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "tessera: error: rank %d: out of memory: the run as configured does not fit "
                         "this machine (lower train.micro_batch, train.global_batch or the model)\n", world->rank());
    world->abort(2);
  } catch (const std::filesystem::filesystem_error& e) {
    std::fprintf(stderr, "tessera: error: rank %d: %s\n", world->rank(), filesystem_error_line(e).c_str());
    world->abort(2);
  }
  return 0;
}

}  // namespace tessera
