// Topology: pure rank arithmetic for world = dp x pp x tp, tensor parallel innermost
// (neighbouring ranks share a node's fast links), pipeline outermost. No MPI here.
#pragma once
#include <string>
#include <vector>

namespace tessera {

struct Coords {
  int dp = 0, pp = 0, tp = 0;
};

class Topology {
 public:
  // dp = 0 means world / (tp * pp). Throws UserError when the degrees do not multiply to world.
  Topology(int world, int tp, int pp, int dp);

  int world() const { return world_; }
  int tp() const { return tp_; }
  int pp() const { return pp_; }
  int dp() const { return dp_; }

  Coords coords(int rank) const;
  int rank_of(Coords c) const;
  // Ranks sharing every coordinate but one, in that axis's order.
  std::vector<int> tp_group(int rank) const;
  std::vector<int> pp_group(int rank) const;
  std::vector<int> dp_group(int rank) const;
  bool first_stage(int rank) const { return coords(rank).pp == 0; }
  bool last_stage(int rank) const { return coords(rank).pp == pp_ - 1; }
  // Pipeline neighbours, or -1 at the ends.
  int prev_stage_rank(int rank) const;
  int next_stage_rank(int rank) const;
  std::string describe(int rank) const;  // "dp 0/2 pp 1/2 tp 0/2"

 private:
  int world_, tp_, pp_, dp_;
};

}  // namespace tessera
