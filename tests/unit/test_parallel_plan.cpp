// Topology arithmetic and pipeline schedule generators (no MPI).
#include <gtest/gtest.h>

#include <set>

#include "launch/layout.h"
#include "parallel/schedule.h"
#include "parallel/topology.h"
#include "runtime/error.h"

namespace tessera {
namespace {

TEST(Topology, TensorParallelInnermost) {
  Topology t(8, 2, 2, 0);
  EXPECT_EQ(t.dp(), 2);
  EXPECT_EQ(t.tp_group(5), (std::vector<int>{4, 5}));
  EXPECT_EQ(t.pp_group(5), (std::vector<int>{5, 7}));
  EXPECT_EQ(t.dp_group(5), (std::vector<int>{1, 5}));
  std::set<int> seen;
  for (int r = 0; r < 8; ++r) {
    EXPECT_EQ(t.rank_of(t.coords(r)), r);
    seen.insert(r);
  }
  EXPECT_EQ(t.next_stage_rank(1), 3);
  EXPECT_EQ(t.prev_stage_rank(1), -1);
  EXPECT_TRUE(t.last_stage(3));
}

TEST(Topology, TensorParallelGroupsAcrossHosts) {
  const Topology t(8, 2, 2, 2);  // tp pairs: (0,1) (2,3) (4,5) (6,7)
  EXPECT_EQ(tp_group_spanning_hosts({"a", "a", "a", "a", "b", "b", "b", "b"}, t), "");
  EXPECT_EQ(tp_group_spanning_hosts({"a", "a", "a", "b", "b", "b", "b", "b"}, t), "ranks 2-3 spans nodes a, b");
  const Topology wide(4, 4, 1, 1);
  EXPECT_EQ(tp_group_spanning_hosts({"n1", "n1", "n2", "n2"}, wide), "ranks 0-3 spans nodes n1, n2");
  EXPECT_EQ(tp_group_spanning_hosts({"n1"}, Topology(1, 1, 1, 1)), "");
}

TEST(Topology, RejectsImpossibleLayouts) {
  EXPECT_THROW(Topology(6, 4, 1, 0), UserError);
  EXPECT_THROW(Topology(8, 2, 2, 3), UserError);
  EXPECT_THROW(Topology(8, 0, 2, 0), UserError);
}

TEST(Schedule, OneF1BHasEveryOpOnceAndBoundedMemory) {
  for (int pp = 1; pp <= 4; ++pp)
    for (int stage = 0; stage < pp; ++stage)
      for (int m = 1; m <= 8; ++m) {
        auto ops = schedule_1f1b(pp, stage, m);
        ASSERT_EQ(ops.size(), 2u * m);
        std::set<int> f, b;
        for (const PipeOp& op : ops) {
          if (op.kind == PipeOpKind::forward) f.insert(op.microbatch);
          else {
            EXPECT_TRUE(f.count(op.microbatch)) << "backward before forward";
            b.insert(op.microbatch);
          }
        }
        EXPECT_EQ(f.size(), static_cast<size_t>(m));
        EXPECT_EQ(b.size(), static_cast<size_t>(m));
        EXPECT_EQ(schedule_max_in_flight(ops), std::min(pp - stage, m));
      }
  EXPECT_EQ(schedule_max_in_flight(schedule_gpipe(2, 0, 5)), 5);
}

}  // namespace
}  // namespace tessera
