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
  // Local virtual stage 0..v-1 (interleaved schedules). Rank `stage` of `pp` owns model
  // chunks stage, stage + pp, stage + 2*pp, ...: model chunk = chunk * pp + stage.
  int chunk = 0;
  bool operator==(const PipeOp&) const = default;
};

// GPipe: every forward, then every backward (in reverse micro-batch order).
std::vector<PipeOp> schedule_gpipe(int pp, int stage, int n_micro);
// 1F1B: warmup forwards (pp - stage - 1), then one-forward-one-backward, then cooldown.
std::vector<PipeOp> schedule_1f1b(int pp, int stage, int n_micro);
// Interleaved 1F1B (Megatron-LM virtual pipeline, Narayanan et al. 2021, section 2.2):
// each rank holds `virtual_stages` (v) model chunks, and micro-batches sweep the chunks in
// groups of pp, which shrinks the bubble by v at the cost of v times more messages.
// v == 1 is exactly schedule_1f1b. v > 1 needs n_micro % pp == 0 (UserError otherwise).
std::vector<PipeOp> schedule_interleaved(int pp, int stage, int n_micro, int virtual_stages);
// Micro-batch activations alive at once on the rank, all chunks together.
int schedule_max_in_flight(const std::vector<PipeOp>& ops);
// The most micro-batches alive at once in any one local chunk (sizes activation slots per
// chunk when each chunk owns its own arena).
int schedule_max_in_flight_per_chunk(const std::vector<PipeOp>& ops, int virtual_stages);
// "gpipe", "1f1b" or "interleaved"; virtual_stages > 1 only with "interleaved".
std::vector<PipeOp> schedule_make(const std::string& name, int pp, int stage, int n_micro,
                                  int virtual_stages = 1);

// Timing model of a whole pipeline, for tests and for comparing schedules: each rank runs
// its list strictly in order; sends never block, receives do. Forward of (mb, model chunk
// c) waits for forward of (mb, c - 1); backward of (mb, c) waits for its own forward and for
// backward of (mb, c + 1). Nothing else (no link bandwidth, no overlap of compute).
struct PipeSimulation {
  bool completed = false;    // false: the lists are invalid or deadlock
  std::string problem;       // why not completed (names the stuck ops); empty otherwise
  double makespan = 0;       // time at which the last op on any rank finishes
  std::vector<double> idle;  // per rank: makespan - time spent computing
};
// rank_ops[r] is rank r's list for the same (pp = rank_ops.size(), n_micro, v). t_forward
// and t_backward are the cost of one op on one local chunk.
PipeSimulation schedule_simulate(const std::vector<std::vector<PipeOp>>& rank_ops, int n_micro,
                                 int virtual_stages, double t_forward = 1, double t_backward = 2);

}  // namespace tessera
