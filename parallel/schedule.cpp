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

std::vector<PipeOp> schedule_interleaved(int pp, int stage, int n_micro, int virtual_stages) {
  const int v = virtual_stages;
  if (v < 1) throw UserError("parallel.virtual_stages must be at least 1");
  if (v == 1) return schedule_1f1b(pp, stage, n_micro);
  if (n_micro % pp != 0)
    throw UserError("parallel.virtual_stages > 1 needs micro-batches per step (" +
                    std::to_string(n_micro) + ") to be a multiple of parallel.pp (" +
                    std::to_string(pp) + ")");
  // The k-th forward (or backward) on this rank: micro-batches advance in groups of pp
  // through the local chunks, so each group fills the whole pipe of pp * v chunks once.
  auto op_at = [&](PipeOpKind kind, int k) {
    int chunk = (k / pp) % v;
    if (kind == PipeOpKind::backward) chunk = v - 1 - chunk;  // gradients flow back
    return PipeOp{kind, (k / (pp * v)) * pp + k % pp, chunk};
  };
  const int total = n_micro * v;
  // Megatron's warmup: (v - 1) * pp forwards to reach the last chunk's first forward, plus
  // two per downstream rank (a forward down and its backward back up) so that the first
  // backward's input has arrived by the time the rank asks for it.
  const int warmup = std::min((pp - stage - 1) * 2 + (v - 1) * pp, total);
  std::vector<PipeOp> ops;
  int next_f = 0, next_b = 0;
  while (next_f < warmup) ops.push_back(op_at(PipeOpKind::forward, next_f++));
  while (next_f < total) {
    ops.push_back(op_at(PipeOpKind::forward, next_f++));
    ops.push_back(op_at(PipeOpKind::backward, next_b++));
  }
  while (next_b < total) ops.push_back(op_at(PipeOpKind::backward, next_b++));
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

int schedule_max_in_flight_per_chunk(const std::vector<PipeOp>& ops, int virtual_stages) {
  std::vector<int> alive(virtual_stages, 0);
  int peak = 0;
  for (const PipeOp& op : ops) {
    TS_ASSERT(op.chunk >= 0 && op.chunk < virtual_stages, "op chunk outside virtual_stages");
    int& a = alive[op.chunk];
    a += op.kind == PipeOpKind::forward ? 1 : -1;
    peak = std::max(peak, a);
  }
  return peak;
}

std::vector<PipeOp> schedule_make(const std::string& name, int pp, int stage, int n_micro,
                                  int virtual_stages) {
  if (name == "interleaved") return schedule_interleaved(pp, stage, n_micro, virtual_stages);
  if (name != "1f1b" && name != "gpipe")
    throw UserError("parallel.schedule = \"" + name +
                    "\" is not available (allowed: 1f1b, gpipe, interleaved)");
  if (virtual_stages != 1)
    throw UserError("parallel.virtual_stages > 1 needs schedule = \"interleaved\"");
  return name == "1f1b" ? schedule_1f1b(pp, stage, n_micro) : schedule_gpipe(pp, stage, n_micro);
}

namespace {

std::string op_name(const PipeOp& op, int pp, int rank) {
  return std::string(op.kind == PipeOpKind::forward ? "F" : "B") + "(mb " +
         std::to_string(op.microbatch) + ", model chunk " + std::to_string(op.chunk * pp + rank) +
         ")";
}

}  // namespace

PipeSimulation schedule_simulate(const std::vector<std::vector<PipeOp>>& rank_ops, int n_micro,
                                 int virtual_stages, double t_forward, double t_backward) {
  PipeSimulation sim;
  const int pp = static_cast<int>(rank_ops.size());
  const int chunks = pp * virtual_stages;  // model chunks, pipeline-wide
  constexpr double not_done = -1;
  // (L = n_micro * chunks) finish time of each forward / backward, indexed mb * chunks + c.
  std::vector<double> f_done(static_cast<size_t>(n_micro) * chunks, not_done);
  std::vector<double> b_done(f_done.size(), not_done);

  // Validate first: a duplicated op would silently overwrite a finish time below.
  for (int r = 0; r < pp; ++r) {
    std::vector<int> seen(2 * f_done.size(), 0);
    for (const PipeOp& op : rank_ops[r]) {
      if (op.microbatch < 0 || op.microbatch >= n_micro || op.chunk < 0 ||
          op.chunk >= virtual_stages) {
        sim.problem = "rank " + std::to_string(r) + ": op out of range";
        return sim;
      }
      const size_t at = static_cast<size_t>(op.microbatch) * chunks + op.chunk * pp + r;
      if (++seen[2 * at + (op.kind == PipeOpKind::backward)] > 1) {
        sim.problem = "rank " + std::to_string(r) + ": " + op_name(op, pp, r) + " twice";
        return sim;
      }
    }
    if (rank_ops[r].size() != 2u * n_micro * virtual_stages) {
      sim.problem = "rank " + std::to_string(r) + ": ops missing";
      return sim;
    }
  }

  // Each op starts when its rank is free and its inputs have arrived; sweeping until no rank
  // moves gives the same times in any sweep order, since they are longest paths in a DAG.
  std::vector<size_t> next(pp, 0);
  std::vector<double> free_at(pp, 0), busy(pp, 0);
  for (bool moved = true; moved;) {
    moved = false;
    for (int r = 0; r < pp; ++r) {
      for (; next[r] < rank_ops[r].size(); ++next[r]) {
        const PipeOp& op = rank_ops[r][next[r]];
        const int c = op.chunk * pp + r;
        const size_t at = static_cast<size_t>(op.microbatch) * chunks + c;
        double ready = free_at[r];
        if (op.kind == PipeOpKind::forward) {
          if (c > 0) {
            if (f_done[at - 1] == not_done) break;
            ready = std::max(ready, f_done[at - 1]);
          }
        } else {
          if (f_done[at] == not_done) break;
          ready = std::max(ready, f_done[at]);
          if (c + 1 < chunks) {
            if (b_done[at + 1] == not_done) break;
            ready = std::max(ready, b_done[at + 1]);
          }
        }
        const double cost = op.kind == PipeOpKind::forward ? t_forward : t_backward;
        free_at[r] = ready + cost;
        busy[r] += cost;
        (op.kind == PipeOpKind::forward ? f_done : b_done)[at] = free_at[r];
        moved = true;
      }
    }
  }

  for (int r = 0; r < pp; ++r) {
    if (next[r] < rank_ops[r].size())
      sim.problem += (sim.problem.empty() ? "deadlock: " : "; ") + std::string("rank ") +
                     std::to_string(r) + " waits at " + op_name(rank_ops[r][next[r]], pp, r);
  }
  if (!sim.problem.empty()) return sim;
  sim.completed = true;
  sim.makespan = *std::max_element(free_at.begin(), free_at.end());
  for (int r = 0; r < pp; ++r) sim.idle.push_back(sim.makespan - busy[r]);
  return sim;
}

}  // namespace tessera
