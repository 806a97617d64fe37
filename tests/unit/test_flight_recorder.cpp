// The flight recorder's ring and heartbeats, and the hang report built from them.
#include <gtest/gtest.h>

#include "parallel/flight_recorder.h"

namespace tessera {
namespace {

TEST(FlightRecorder, CurrentWaitIsTheLongestUnfinishedWait) {
  FlightRecorder r(8);
  const int dp = r.add_comm("dp", {0, 2});
  const int tp = r.add_comm("tp", {0, 1});
  r.set_step(3);
  r.set_phase(1, "backward");
  EXPECT_FALSE(r.current_wait());
  const int64_t a = r.issue(dp, "all-reduce 1.0 MB");
  const int64_t b = r.issue(tp, "all-reduce 2.0 KB");
  EXPECT_FALSE(r.current_wait()) << "issued but not waited on is not a wait";
  r.wait(a);
  r.wait(b);
  r.done(b);
  const auto stall = r.current_wait();
  ASSERT_TRUE(stall);
  EXPECT_EQ(stall->op.seq, a);
  EXPECT_EQ(stall->op.comm, dp);
  EXPECT_EQ(stall->op.comm_seq, 0);
  EXPECT_EQ(stall->op.step, 3);
  EXPECT_EQ(stall->op.micro_batch, 1);
  EXPECT_EQ(stall->op.phase, "backward");
  r.done(a);
  EXPECT_FALSE(r.current_wait());
  // Per-communicator numbering: the same op has the same number on every member.
  EXPECT_EQ(r.issue(dp, "x"), 2);
  EXPECT_EQ(r.heartbeat(0, "h", 1, 0).issued.at("dp"), 2);
  EXPECT_EQ(r.heartbeat(0, "h", 1, 0).issued.at("tp"), 1);
}

TEST(FlightRecorder, RingKeepsTheLastOpsOldestFirst) {
  FlightRecorder r(4);
  const int c = r.add_comm("pp", {0, 1});
  for (int i = 0; i < 10; ++i) r.done(r.issue(c, "send " + std::to_string(i) + " KB to rank 1"));
  const std::string dump = r.dump();
  EXPECT_EQ(dump.find("send 5 KB"), std::string::npos);
  const size_t six = dump.find("#6 send 6 KB"), nine = dump.find("#9 send 9 KB");
  ASSERT_NE(six, std::string::npos) << dump;
  ASSERT_NE(nine, std::string::npos) << dump;
  EXPECT_LT(six, nine);
  r.wait(2);  // overwritten long ago: ignored, not a wait
  EXPECT_FALSE(r.current_wait());
}

TEST(FlightRecorder, HeartbeatRoundTripAndTornFiles) {
  Heartbeat h;
  h.rank = 3;
  h.host = "node2";
  h.pid = 4242;
  h.wall_s = 1700000000.5;
  h.step = 17;
  h.micro_batch = 2;
  h.phase = "forward";
  h.waiting = "recv 4.0 KB from rank 1 on pp";
  h.issued = {{"dp", 5}, {"pp", 40}};
  const std::string text = heartbeat_text(h);
  const auto back = heartbeat_parse(text);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->rank, 3);
  EXPECT_EQ(back->host, "node2");
  EXPECT_EQ(back->pid, 4242);
  EXPECT_DOUBLE_EQ(back->wall_s, 1700000000.5);
  EXPECT_EQ(back->step, 17);
  EXPECT_EQ(back->micro_batch, 2);
  EXPECT_EQ(back->phase, "forward");
  EXPECT_EQ(back->waiting, h.waiting);
  EXPECT_EQ(back->issued, h.issued);
  EXPECT_FALSE(heartbeat_parse(text.substr(0, text.size() - 6))) << "a file cut short";
  EXPECT_FALSE(heartbeat_parse("rank=x\nend=1\n"));
  EXPECT_FALSE(heartbeat_parse(""));
}

Heartbeat peer(int rank, double wall, int64_t dp_issued) {
  Heartbeat h;
  h.rank = rank;
  h.host = "node" + std::to_string(rank);
  h.pid = 100 + rank;
  h.wall_s = wall;
  h.step = 9;
  h.micro_batch = 0;
  h.phase = "forward";
  h.issued = {{"dp", dp_issued}};
  return h;
}

TEST(FlightRecorder, StallReportNamesWhoHadNotArrived) {
  FlightRecorder r;
  const int dp = r.add_comm("dp", {0, 1, 2, 3, 4});
  r.set_step(10);
  r.set_phase(-1, "finalize_grads");
  r.issue(dp, "all-reduce 1.0 MB");  // op 0 of dp
  const int64_t seq = r.issue(dp, "all-reduce 2.0 MB");  // op 1: the stalled one
  r.wait(seq);
  const auto stall = r.current_wait();
  ASSERT_TRUE(stall);
  const double now = 1000;
  std::map<int, Heartbeat> peers = {
      {1, peer(1, now - 30, 2)},  // stale: stopped or gone
      {2, peer(2, now - 0.5, 1)},  // alive, still before op 1
      {3, peer(3, now - 0.5, 2)},  // reached it
  };  // rank 4: no heartbeat file at all
  const std::string line = stall_report(*stall, "dp", {0, 1, 2, 3, 4}, 0, "node0", peers, now, 7);
  EXPECT_NE(line.find("rank 0 (node0) waited"), std::string::npos) << line;
  EXPECT_NE(line.find("on all-reduce 2.0 MB on dp (ranks 0,1,2,3,4, its op 1) at step 10 (finalize_grads)"),
            std::string::npos) << line;
  EXPECT_NE(line.find("rank 1 (node1, pid 101): no heartbeat for 30.0 s (stopped or gone), last at step 9, micro-batch 0 (forward)"),
            std::string::npos) << line;
  EXPECT_NE(line.find("rank 2 (node2, pid 102): alive but has not reached it"), std::string::npos) << line;
  EXPECT_EQ(line.find("rank 3 "), std::string::npos) << "rank 3 had arrived: " << line;
  EXPECT_NE(line.find("rank 4: no heartbeat at all"), std::string::npos) << line;
  // Everyone there: the report says so instead of blaming a peer.
  const std::string all = stall_report(*stall, "dp", {0, 3}, 0, "node0", peers, now, 7);
  EXPECT_NE(all.find("every member had reached it"), std::string::npos) << all;
}

}  // namespace
}  // namespace tessera
