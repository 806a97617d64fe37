// Pipeline schedules checked as a whole pipeline: every rank's list is run through the
// timing simulator, so a schedule that deadlocks or wastes time fails here, not on a cluster.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "parallel/schedule.h"
#include "runtime/error.h"

namespace tessera {
namespace {

struct Case {
  std::string name;
  int pp, n_micro, v;
};

std::string describe(const Case& c) {
  return c.name + " pp=" + std::to_string(c.pp) + " n_micro=" + std::to_string(c.n_micro) +
         " v=" + std::to_string(c.v);
}

// Every generator over pp 1..8, a spread of micro-batch counts (fewer than pp, exactly pp,
// multiples, and fixed 8 / 16), and 1..4 virtual stages where the schedule allows them.
std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (int pp = 1; pp <= 8; ++pp)
    for (int m : {1, 3, pp, 2 * pp, 3 * pp, 8, 16}) {
      cases.push_back({"gpipe", pp, m, 1});
      cases.push_back({"1f1b", pp, m, 1});
      for (int v = 1; v <= 4; ++v)
        if (v == 1 || m % pp == 0) cases.push_back({"interleaved", pp, m, v});
    }
  return cases;
}

std::vector<std::vector<PipeOp>> pipeline(const Case& c) {
  std::vector<std::vector<PipeOp>> ranks;
  for (int stage = 0; stage < c.pp; ++stage)
    ranks.push_back(schedule_make(c.name, c.pp, stage, c.n_micro, c.v));
  return ranks;
}

TEST(ScheduleSim, EveryOpOnceAndForwardBeforeBackward) {
  for (const Case& c : all_cases()) {
    for (int stage = 0; stage < c.pp; ++stage) {
      const auto ops = schedule_make(c.name, c.pp, stage, c.n_micro, c.v);
      std::map<std::pair<int, int>, int> forwards, backwards;  // (mb, chunk) -> count
      for (const PipeOp& op : ops) {
        ASSERT_TRUE(op.microbatch >= 0 && op.microbatch < c.n_micro) << describe(c);
        ASSERT_TRUE(op.chunk >= 0 && op.chunk < c.v) << describe(c);
        const std::pair<int, int> key{op.microbatch, op.chunk};
        if (op.kind == PipeOpKind::forward) {
          ++forwards[key];
        } else {
          EXPECT_EQ(forwards[key], 1) << "backward before forward, " << describe(c);
          ++backwards[key];
        }
      }
      EXPECT_EQ(ops.size(), 2u * c.n_micro * c.v) << describe(c);
      EXPECT_EQ(forwards.size(), static_cast<size_t>(c.n_micro * c.v)) << describe(c);
      EXPECT_EQ(backwards.size(), static_cast<size_t>(c.n_micro * c.v)) << describe(c);
      for (const auto& [key, n] : forwards) EXPECT_EQ(n, 1) << describe(c);
      for (const auto& [key, n] : backwards) EXPECT_EQ(n, 1) << describe(c);
    }
  }
}

TEST(ScheduleSim, GeneratedSchedulesNeverDeadlock) {
  for (const Case& c : all_cases()) {
    const PipeSimulation sim = schedule_simulate(pipeline(c), c.n_micro, c.v);
    EXPECT_TRUE(sim.completed) << describe(c) << ": " << sim.problem;
  }
}

// With t_b = 2 t_f the 1F1B (and GPipe) bubble is the textbook (p - 1) / (m + p - 1): the
// pipeline fills and drains once, (p - 1) * (t_f + t_b) idle on every rank.
TEST(ScheduleSim, OneF1BBubbleIsPMinusOneOverMPlusPMinusOne) {
  for (const Case& c : all_cases()) {
    if (c.v != 1) continue;
    const PipeSimulation sim = schedule_simulate(pipeline(c), c.n_micro, 1, 1.0, 2.0);
    ASSERT_TRUE(sim.completed) << describe(c) << ": " << sim.problem;
    EXPECT_DOUBLE_EQ(sim.makespan, (c.n_micro + c.pp - 1) * 3.0) << describe(c);
    for (double idle : sim.idle)
      EXPECT_NEAR(idle / sim.makespan, (c.pp - 1.0) / (c.n_micro + c.pp - 1), 1e-12)
          << describe(c);
  }
}

// Narayanan et al. 2021, section 2.2.1: with v chunks per rank each op costs 1/v, so the fill
// and drain shrink to (p - 1) / v and the bubble to (p - 1) / (v m + p - 1). The simulator
// reproduces it exactly for this ordering, for several backward/forward cost ratios.
TEST(ScheduleSim, InterleavedBubbleShrinksByVirtualStages) {
  for (const Case& c : all_cases()) {
    if (c.name != "interleaved") continue;
    for (double t_backward : {1.0, 2.0, 3.0}) {
      const PipeSimulation sim = schedule_simulate(pipeline(c), c.n_micro, c.v, 1.0, t_backward);
      ASSERT_TRUE(sim.completed) << describe(c) << ": " << sim.problem;
      EXPECT_DOUBLE_EQ(sim.makespan, (c.v * c.n_micro + c.pp - 1) * (1.0 + t_backward))
          << describe(c) << " t_b=" << t_backward;
      for (double idle : sim.idle)
        EXPECT_NEAR(idle / sim.makespan, (c.pp - 1.0) / (c.v * c.n_micro + c.pp - 1), 1e-12)
            << describe(c) << " t_b=" << t_backward;
    }
  }
}

TEST(ScheduleSim, DetectsDeadlockAndInvalidLists) {
  // Last rank of 1F1B asks for backward of mb 1 before it has run forward of mb 1.
  auto ranks = pipeline({"1f1b", 4, 8, 1});
  std::vector<PipeOp>& last = ranks.back();
  auto first_b = std::find_if(last.begin(), last.end(),
                              [](const PipeOp& op) { return op.kind == PipeOpKind::backward; });
  auto second_b = std::find_if(first_b + 1, last.end(),
                               [](const PipeOp& op) { return op.kind == PipeOpKind::backward; });
  std::iter_swap(first_b, second_b);
  PipeSimulation sim = schedule_simulate(ranks, 8, 1);
  EXPECT_FALSE(sim.completed);
  EXPECT_NE(sim.problem.find("deadlock"), std::string::npos) << sim.problem;

  // Stage lists handed out in reverse: rank 0 waits for a backward that needs its own
  // forward, which it has queued behind that backward (a cross-rank cycle).
  ranks = pipeline({"1f1b", 4, 8, 1});
  std::reverse(ranks.begin(), ranks.end());
  sim = schedule_simulate(ranks, 8, 1);
  EXPECT_FALSE(sim.completed);
  EXPECT_NE(sim.problem.find("deadlock"), std::string::npos) << sim.problem;

  // Interleaved with backward chunks in forward order (the classic bug): the last rank
  // runs backward of chunk 0 before the last model chunk's backward it depends on.
  ranks = pipeline({"interleaved", 4, 8, 2});
  for (auto& ops : ranks)
    for (PipeOp& op : ops)
      if (op.kind == PipeOpKind::backward) op.chunk = 1 - op.chunk;
  sim = schedule_simulate(ranks, 8, 2);
  EXPECT_FALSE(sim.completed);
  EXPECT_NE(sim.problem.find("deadlock"), std::string::npos) << sim.problem;

  // A repeated op and a missing op are rejected before timing anything.
  ranks = pipeline({"1f1b", 2, 4, 1});
  ranks[1][1] = ranks[1][0];
  sim = schedule_simulate(ranks, 4, 1);
  EXPECT_FALSE(sim.completed);
  EXPECT_NE(sim.problem.find("twice"), std::string::npos) << sim.problem;
  ranks = pipeline({"1f1b", 2, 4, 1});
  ranks[0].pop_back();
  EXPECT_FALSE(schedule_simulate(ranks, 4, 1).completed);
}

// Golden order for pp = 2, v = 2, 4 micro-batches, written out by hand from Megatron's
// rule (forward k -> mb (k / 4) * 2 + k % 2, chunk (k / 2) % 2; backward chunks reversed).
TEST(ScheduleInterleaved, MatchesMegatronOrderForTwoStages) {
  auto F = [](int mb, int chunk) { return PipeOp{PipeOpKind::forward, mb, chunk}; };
  auto B = [](int mb, int chunk) { return PipeOp{PipeOpKind::backward, mb, chunk}; };
  const std::vector<PipeOp> stage0 = {F(0, 0), F(1, 0), F(0, 1), F(1, 1), F(2, 0), B(0, 1),
                                      F(3, 0), B(1, 1), F(2, 1), B(0, 0), F(3, 1), B(1, 0),
                                      B(2, 1), B(3, 1), B(2, 0), B(3, 0)};
  const std::vector<PipeOp> stage1 = {F(0, 0), F(1, 0), F(0, 1), B(0, 1), F(1, 1), B(1, 1),
                                      F(2, 0), B(0, 0), F(3, 0), B(1, 0), F(2, 1), B(2, 1),
                                      F(3, 1), B(3, 1), B(2, 0), B(3, 0)};
  EXPECT_EQ(schedule_interleaved(2, 0, 4, 2), stage0);
  EXPECT_EQ(schedule_interleaved(2, 1, 4, 2), stage1);
}

TEST(ScheduleInterleaved, OneVirtualStageIsOneF1B) {
  for (int pp = 1; pp <= 8; ++pp)
    for (int stage = 0; stage < pp; ++stage)
      for (int m = 1; m <= 17; ++m)
        EXPECT_EQ(schedule_interleaved(pp, stage, m, 1), schedule_1f1b(pp, stage, m));
}

TEST(ScheduleInterleaved, RejectsConfigsItCannotRun) {
  EXPECT_THROW(schedule_interleaved(4, 0, 6, 2), UserError);  // 6 micro-batches, 4 stages
  EXPECT_THROW(schedule_interleaved(2, 0, 4, 0), UserError);
  EXPECT_THROW(schedule_make("1f1b", 2, 0, 4, 2), UserError);
  EXPECT_THROW(schedule_make("gpipe", 2, 0, 4, 2), UserError);
  EXPECT_THROW(schedule_make("zero-bubble", 2, 0, 4), UserError);
  EXPECT_NO_THROW(schedule_make("interleaved", 2, 0, 4, 2));
}

// 1F1B keeps at most pp - stage micro-batches alive; interleaved keeps Megatron's warmup
// plus one across its chunks, and one chunk never holds more than that or than n_micro.
TEST(ScheduleSim, MaxInFlightPerChunk) {
  for (int pp = 1; pp <= 8; ++pp)
    for (int stage = 0; stage < pp; ++stage)
      for (int m : {1, 3, pp, 2 * pp, 8, 16}) {
        const auto ops = schedule_1f1b(pp, stage, m);
        EXPECT_EQ(schedule_max_in_flight_per_chunk(ops, 1), std::min(pp - stage, m));
        EXPECT_EQ(schedule_max_in_flight(ops), std::min(pp - stage, m));
        for (int v = 2; v <= 4; ++v) {
          if (m % pp != 0) continue;
          const auto iops = schedule_interleaved(pp, stage, m, v);
          const int warmup = (pp - stage - 1) * 2 + (v - 1) * pp;
          const int total = schedule_max_in_flight(iops);
          EXPECT_EQ(total, std::min(warmup + 1, m * v)) << pp << " " << stage << " " << m;
          const int per_chunk = schedule_max_in_flight_per_chunk(iops, v);
          EXPECT_LE(per_chunk, std::min(total, m));
          EXPECT_GE(per_chunk * v, total);
        }
      }
}

}  // namespace
}  // namespace tessera
