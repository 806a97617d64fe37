// Start-up checks of a parallel run: the layout against the model and batch, and the agreement
// of every rank on the outcome of whatever could fail before the first collective.
#include "launch/layout.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include "parallel/mpi_comm.h"
#include "runtime/error.h"

namespace tessera {
namespace {

std::string str(int64_t v) { return std::to_string(v); }

}  // namespace

void validate_layout(const RunConfig& cfg, const Topology& topo) {
  const ModelConfig& m = cfg.model;
  const ParallelConfig& p = cfg.parallel;
  const std::string& src = cfg.source;
  const int64_t tp = topo.tp(), pp = topo.pp(), dp = topo.dp(), v = p.virtual_stages;
  auto need = [&](bool ok, const std::string& what) {
    if (!ok) throw UserError(src + ": " + what);
  };
  need(m.n_head % tp == 0, "model.n_head = " + str(m.n_head) + " is not divisible by parallel.tp = " + str(tp));
  need(m.kv_heads() % tp == 0, "model.n_kv_head = " + str(m.kv_heads()) +
                                 " is not divisible by parallel.tp = " + str(tp) +
                                 " (each tensor-parallel rank holds whole key/value heads)");
  need(m.ff() % tp == 0, "the MLP width (" + str(m.ff()) + ") is not divisible by parallel.tp = " + str(tp));
  need(m.padded_vocab() % tp == 0, "the padded vocabulary (" + str(m.padded_vocab()) +
                                       ") is not divisible by parallel.tp = " + str(tp));
  need(v >= 1, "parallel.virtual_stages must be >= 1");
  need(v == 1 || p.schedule == "interleaved",
       "parallel.virtual_stages = " + str(v) + " needs parallel.schedule = \"interleaved\"");
  need(v == 1 || pp > 1, "parallel.virtual_stages > 1 needs parallel.pp > 1");
  need(m.n_layer % (pp * v) == 0, "model.n_layer = " + str(m.n_layer) +
                                      " is not divisible by parallel.pp * parallel.virtual_stages = " +
                                      str(pp * v));
  const int64_t global = cfg.train.global_batch ? cfg.train.global_batch : cfg.train.micro_batch * dp;
  need(global % (cfg.train.micro_batch * dp) == 0,
       "train.global_batch = " + str(global) + " is not divisible by train.micro_batch * dp = " +
           str(cfg.train.micro_batch) + " * " + str(dp));
  if (p.schedule == "interleaved" && v > 1) {
    const int64_t micro = global / (cfg.train.micro_batch * dp);
    need(micro % pp == 0, "the interleaved schedule needs micro-batches per step (" + str(micro) +
                              ") divisible by parallel.pp = " + str(pp) + " (raise train.global_batch)");
  }
  need(!p.sequence_parallel || (cfg.train.micro_batch * m.seq_len) % tp == 0,
       "parallel.sequence_parallel needs train.micro_batch * model.seq_len (" +
           str(cfg.train.micro_batch * m.seq_len) + ") divisible by parallel.tp = " + str(tp));
  need(!(cfg.train.device == "cpu" && cfg.train.precision == "bf16"),
       "train.precision = \"bf16\" needs train.device = \"cuda\"");
}

std::string tp_group_spanning_hosts(const std::vector<std::string>& rank_hosts, const Topology& topo) {
  for (int rank = 0; rank < topo.world() && rank < static_cast<int>(rank_hosts.size()); ++rank) {
    const std::vector<int> group = topo.tp_group(rank);
    if (group.front() != rank) continue;  // each group once, from its first rank
    std::vector<std::string> hosts;
    for (int r : group)
      if (r < static_cast<int>(rank_hosts.size()) &&
          std::find(hosts.begin(), hosts.end(), rank_hosts[r]) == hosts.end())
        hosts.push_back(rank_hosts[r]);
    if (hosts.size() < 2) continue;
    std::string text = "ranks ";
    const bool consecutive = group.back() - group.front() + 1 == static_cast<int>(group.size());
    if (consecutive) {
      text += str(group.front());
      text += '-';
      text += str(group.back());
    } else {
      for (size_t i = 0; i < group.size(); ++i) {
        if (i) text += ',';
        text += str(group[i]);
      }
    }
    text += " spans nodes ";
    for (size_t i = 0; i < hosts.size(); ++i) {
      if (i) text += ", ";
      text += hosts[i];
    }
    return text;
  }
  return "";
}

void run_agreed(const MpiWorld* world, const std::function<void()>& fn) {
  if (!world) {
    fn();
    return;
  }
  std::string error;
  try {
    fn();
  } catch (const UserError& e) {
    error = e.what();
  }
  const int first = world->first_rank_with(!error.empty());
  if (first >= 0) fail_together(world, error, first == world->rank());
}

void fail_together(const MpiWorld* world, const std::string& message, bool report) {
  if (report) {
    std::fprintf(stderr, "tessera: error: %s\n", message.c_str());
    std::fflush(stderr);
  }
  // Nobody exits before the line is out: the launcher kills the job at the first exit.
  if (world) world->first_rank_with(false);
  throw AgreedError(message, false);
}

}  // namespace tessera
