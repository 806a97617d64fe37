#include "parallel/topology.h"

#include "runtime/error.h"

namespace tessera {

Topology::Topology(int world, int tp, int pp, int dp) : world_(world), tp_(tp), pp_(pp), dp_(dp) {
  if (tp < 1 || pp < 1 || dp < 0)
    throw UserError("parallel: tp and pp must be >= 1 and dp >= 0 (0 = world / (tp*pp))");
  if (world % (tp * pp) != 0)
    throw UserError("parallel: world size " + std::to_string(world) + " is not divisible by tp*pp = " +
                    std::to_string(tp * pp) + " (start the ranks with mpirun -np N or srun -n N)");
  if (dp == 0) dp_ = world / (tp * pp);
  if (dp_ * tp * pp != world)
    throw UserError("parallel: dp*pp*tp = " + std::to_string(dp_ * tp * pp) +
                    " but the world size is " + std::to_string(world) +
                    " (start the ranks with mpirun -np N or srun -n N, or set parallel.dp = 0)");
}

Coords Topology::coords(int rank) const {
  TS_ASSERT(rank >= 0 && rank < world_, "rank out of range");
  return {rank / (tp_ * pp_), (rank / tp_) % pp_, rank % tp_};
}

int Topology::rank_of(Coords c) const { return (c.dp * pp_ + c.pp) * tp_ + c.tp; }

std::vector<int> Topology::tp_group(int rank) const {
  Coords c = coords(rank);
  std::vector<int> g;
  for (c.tp = 0; c.tp < tp_; ++c.tp) g.push_back(rank_of(c));
  return g;
}

std::vector<int> Topology::pp_group(int rank) const {
  Coords c = coords(rank);
  std::vector<int> g;
  for (c.pp = 0; c.pp < pp_; ++c.pp) g.push_back(rank_of(c));
  return g;
}

std::vector<int> Topology::dp_group(int rank) const {
  Coords c = coords(rank);
  std::vector<int> g;
  for (c.dp = 0; c.dp < dp_; ++c.dp) g.push_back(rank_of(c));
  return g;
}

int Topology::prev_stage_rank(int rank) const {
  Coords c = coords(rank);
  if (c.pp == 0) return -1;
  --c.pp;
  return rank_of(c);
}

int Topology::next_stage_rank(int rank) const {
  Coords c = coords(rank);
  if (c.pp == pp_ - 1) return -1;
  ++c.pp;
  return rank_of(c);
}

std::string Topology::describe(int rank) const {
  const Coords c = coords(rank);
  return "dp " + std::to_string(c.dp) + "/" + std::to_string(dp_) + " pp " + std::to_string(c.pp) +
         "/" + std::to_string(pp_) + " tp " + std::to_string(c.tp) + "/" + std::to_string(tp_);
}

}  // namespace tessera
