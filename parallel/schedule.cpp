#include "parallel/schedule.h"

#include <algorithm>

#include "runtime/error.h"

namespace tessera {

std::vector<PipeOp> schedule_gpipe(int /*pp*/, int /*stage*/, int n_micro) {
  std::vector<PipeOp> ops;
  for (int m = 0; m < n_micro; ++m) ops.push_back({PipeOpKind::forward, m});
  for (int m = n_micro - 1; m >= 0; --m) ops.push_back({PipeOpKind::backward, m});
  return ops;
}

std::vector<PipeOp> schedule_1f1b(int pp, int stage, int n_micro) {
  std::vector<PipeOp> ops;
  const int warmup = std::min(pp - stage - 1, n_micro);
  int next_f = 0, next_b = 0;
  for (int i = 0; i < warmup; ++i) ops.push_back({PipeOpKind::forward, next_f++});
  while (next_f < n_micro) {  // steady state
    ops.push_back({PipeOpKind::forward, next_f++});
    ops.push_back({PipeOpKind::backward, next_b++});
  }
  while (next_b < n_micro) ops.push_back({PipeOpKind::backward, next_b++});  // cooldown
  return ops;
}

int schedule_max_in_flight(const std::vector<PipeOp>& ops) {
  int alive = 0, peak = 0;
  for (const PipeOp& op : ops) {
    alive += op.kind == PipeOpKind::forward ? 1 : -1;
    peak = std::max(peak, alive);
  }
  return peak;
}

std::vector<PipeOp> schedule_make(const std::string& name, int pp, int stage, int n_micro) {
  if (name == "1f1b") return schedule_1f1b(pp, stage, n_micro);
  if (name == "gpipe") return schedule_gpipe(pp, stage, n_micro);
  throw UserError("parallel.schedule = \"" + name + "\" is not available (allowed: 1f1b, gpipe)");
}

}  // namespace tessera
