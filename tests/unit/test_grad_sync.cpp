// Gradient buckets, finalize_grads and ZeRO-1's shard arithmetic with a communicator that
// records what it is asked to do (no MPI): which ranges are reduced, in what order, and when.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "parallel/finalize_grads.h"
#include "parallel/grad_buckets.h"
#include "parallel/zero.h"

namespace tessera {
namespace {

// A 2-rank group that records every collective: "<name> <kind> <first element> <count>".
class RecordingComm final : public Communicator {
 public:
  RecordingComm(std::string name, const float* base, std::vector<std::string>* log)
      : Communicator(std::move(name), 0, 2), base_(base), log_(log) {}

 protected:
  CommHandle do_start(Kind kind, Tensor out, Tensor in, int, int) override {
    static const char* kinds[] = {"all_reduce", "reduce_scatter", "all_gather", "broadcast", "send"};
    const Tensor& t = kind == Kind::all_gather ? out : in;
    log_->push_back(name() + " " + kinds[static_cast<int>(kind)] + " " +
                    std::to_string(t.ptr<float>() - base_) + " " + std::to_string(t.numel()));
    return next_++;
  }
  void do_all_reduce_max(Tensor) override {}
  void do_recv(Tensor, int, int) override {}
  void do_finish(CommHandle h) override { log_->push_back(name() + " finish " + std::to_string(h)); }
  void do_finish_all() override {}

 private:
  const float* base_;
  std::vector<std::string>* log_;
  CommHandle next_ = 0;
};

Tensor view(std::vector<float>& v, int64_t begin, int64_t n) {
  return Tensor{v.data() + begin, DType::f32, DeviceKind::cpu, {n}};
}

// Four parameters of 100, 300, 200, 100 floats; buckets of 1200 bytes (300 floats) formed from
// the last parameter backwards: {3, 2} = [400, 700), then {1} = [100, 400), then {0}.
TEST(GradBuckets, FormFromTheLastParameterAndStartWhenTheirLastGradientIsFinal) {
  std::vector<float> flat(700);
  std::vector<std::string> log;
  RecordingComm dp("dp", flat.data(), &log);
  GradBuckets b({{0, 100}, {100, 400}, {400, 600}, {600, 700}}, 1200, view(flat, 0, 700), &dp);
  EXPECT_EQ(b.num_buckets(), 3);
  b.begin_step();
  b.param_done(3);
  EXPECT_TRUE(log.empty()) << "bucket {3, 2} still waits for parameter 2";
  b.param_done(2);
  b.param_done(1);
  EXPECT_EQ(log, (std::vector<std::string>{"dp all_reduce 400 300", "dp all_reduce 100 300"}));
  EXPECT_FALSE(b.done(0));
  b.param_done(0);
  b.finish();
  EXPECT_EQ(log.size(), 6u);
  EXPECT_EQ(log[2], "dp all_reduce 0 100");
  EXPECT_EQ(log[3], "dp finish 0");
  // A new step starts every bucket over.
  log.clear();
  b.begin_step();
  EXPECT_FALSE(b.done(3));
  b.param_done(2);
  b.param_done(3);
  EXPECT_EQ(log, (std::vector<std::string>{"dp all_reduce 400 300"}));
}

// finalize_grads: tp partial sums only for parameters backward did not already hand over, the
// tied embedding between the pipeline ends, the remaining buckets, then the wait.
TEST(FinalizeGrads, SumsWhatBackwardLeftThenTheTiedEmbeddingThenDataParallel) {
  std::vector<float> flat(700);
  std::vector<std::string> log;
  RecordingComm tp("tp", flat.data(), &log), dp("dp", flat.data(), &log), emb("embedding", flat.data(), &log);
  GradBuckets b({{0, 100}, {100, 400}, {400, 600}, {600, 700}}, 1200, view(flat, 0, 700), &dp);
  b.begin_step();
  b.param_done(3);  // backward finished the last block: its norm (parameter 3) was summed then
  GradFinalize f;
  f.tp = &tp, f.dp = &dp, f.embedding = &emb;
  f.tp_partial = {Tensor{}, Tensor{}, view(flat, 400, 200), view(flat, 600, 100)};
  f.tied_embedding = view(flat, 0, 100);
  f.flat_grads = view(flat, 0, 700);
  finalize_grads(f, b);
  // Parameters 0, 1, 2 complete in registry order: bucket {0} first, then {1}, then {3, 2}
  // (whose parameter 3 was already final); the waits go in bucket order.
  EXPECT_EQ(log, (std::vector<std::string>{"tp all_reduce 400 200", "tp finish 0",
                                           "embedding all_reduce 0 100", "embedding finish 0",
                                           "dp all_reduce 0 100", "dp all_reduce 100 300",
                                           "dp all_reduce 400 300", "dp finish 2", "dp finish 1",
                                           "dp finish 0"}));
}

TEST(Zero, ShardsSplitTheFlatRangeAndGatherFromTheirOwnRange) {
  EXPECT_EQ(zero_shard(1024, 4, 2).begin, 512);
  EXPECT_EQ(zero_shard(1024, 4, 2).end, 768);
  std::vector<float> flat(1024), shard(512);
  std::vector<std::string> log;
  RecordingComm dp("dp", flat.data(), &log);  // 2 ranks; this one is rank 0
  zero_reduce_gradients(dp, view(shard, 0, 512), view(flat, 0, 1024));
  zero_gather_parameters(dp, view(flat, 0, 1024), zero_shard(1024, 2, 0));
  EXPECT_EQ(log[0], "dp reduce_scatter 0 1024");
  EXPECT_EQ(log[2], "dp all_gather 0 1024");
}

}  // namespace
}  // namespace tessera
