// Pipeline schedules as data: a pure generator returns, for one pipeline rank, the ordered
// list of forward/backward ops over micro-batches; one executor runs any list.
#pragma once
#include <string>
#include <vector>

namespace tessera {

enum class PipeOpKind { forward, backward };

struct PipeOp {
  PipeOpKind kind;
  int microbatch;
  int chunk = 0;  // virtual stage (interleaved schedules)
  bool operator==(const PipeOp&) const = default;
};

// GPipe: every forward, then every backward (in reverse micro-batch order).
std::vector<PipeOp> schedule_gpipe(int pp, int stage, int n_micro);
// 1F1B: warmup forwards (pp - stage - 1), then one-forward-one-backward, then cooldown.
std::vector<PipeOp> schedule_1f1b(int pp, int stage, int n_micro);
// Micro-batch activations alive at once under the schedule (sizes the activation arena).
int schedule_max_in_flight(const std::vector<PipeOp>& ops);
std::vector<PipeOp> schedule_make(const std::string& name, int pp, int stage, int n_micro);

}  // namespace tessera
