#include <cstdio>
#include <cstring>
#include <string>

#include "launch/commands.h"
#include "launch/session.h"
#include "runtime/error.h"

namespace tessera {

int cmd_eval(int argc, char** argv) {
  const char* usage = "usage: tessera eval --model WEIGHTS.h5 --tokens SHARD_DIR [--batches N]";
  std::string model_path, tokens;
  int64_t batches = 16;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) throw UserError("eval: " + a + " needs a value (" + usage + ")");
    if (a == "--model") model_path = argv[++i];
    else if (a == "--tokens") tokens = argv[++i];
    else if (a == "--batches") batches = std::stoll(argv[++i]);
    else throw UserError("eval: unknown option " + a + " (" + usage + ")");
  }
  if (model_path.empty() || tokens.empty()) throw UserError(usage);
  RunConfig cfg;
  auto cpu = Device::create(DeviceKind::cpu);
  auto model = session_load_model(model_path, *cpu, /*B=*/1, cfg);
  cfg.train.micro_batch = 1;
  const data::ShardSet shards = data::ShardSet::open(tokens);
  session_check_shards(cfg, shards);
  const EvalResult r = session_evaluate(*cpu, *model, cfg, shards, batches);
  std::printf("{\"loss\": %.9g, \"tokens\": %lld}\n", r.loss, static_cast<long long>(r.tokens));
  return 0;
}

}  // namespace tessera
