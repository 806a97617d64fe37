// Per-rank memory under each parallel layout, read from the arenas (what the arena report
// prints): parameters and gradients shrink as 1/(tp*pp), optimizer state as 1/dp with ZeRO-1.
// Built without communicators: placement does not talk to other ranks.
#include <gtest/gtest.h>

#include <memory>

#include "model/instance.h"
#include "optim/adamw.h"
#include "runtime/device.h"

namespace tessera {
namespace {

ModelConfig memory_config() {
  ModelConfig c;
  c.n_layer = 8;
  c.d_model = 128;
  c.n_head = 4;
  c.seq_len = 32;
  c.vocab_size = 257;
  return c;
}

struct RankMemory {
  size_t params = 0, grads = 0, optimizer = 0;
};

// Rank (tp rank 0, pipeline stage `stage`, dp rank 0) of a tp x pp x dp layout.
RankMemory measure(Device& dev, int tp, int pp, int dp, bool zero, int stage) {
  const ModelConfig cfg = memory_config();
  RunShape shape;
  shape.micro_batch = 1;
  shape.seq_len = cfg.seq_len;
  const TensorSlice slice{tp, 0, false, nullptr};
  const bool sharded = zero && dp > 1;
  ModelInstance model(cfg, {stage_spec_chunk(cfg, stage, pp)}, slice, shape, dev, DType::f32,
                      sharded ? dp : 1);
  const int64_t total = model.registry().flat_values().numel();
  const int64_t shard = sharded ? total / dp : total;
  AdamW opt(OptimConfig{}, model.registry(), DType::f32, 0, shard);
  Arena measure_state("optimizer", dev.kind());
  opt.layout(measure_state);
  return {model.params_arena().used(), model.grads_arena().used(), measure_state.used()};
}

TEST(ParallelMemory, ParametersShrinkWithTensorAndPipelineDegree) {
  auto dev = Device::create(DeviceKind::cpu);
  const RankMemory one = measure(*dev, 1, 1, 1, false, 0);
  for (int tp : {1, 2, 4})
    for (int pp : {1, 2, 4}) {
      const double ideal = static_cast<double>(one.params) / (tp * pp);
      for (int stage = 0; stage < pp; ++stage) {
        const RankMemory r = measure(*dev, tp, pp, 1, false, stage);
        // Replicated LayerNorms and biases and the tied embedding copy on the last stage keep
        // it a little above the ideal split.
        EXPECT_LE(r.params, ideal * 1.15) << "tp " << tp << " pp " << pp << " stage " << stage;
        EXPECT_GE(r.params, ideal * 0.80) << "tp " << tp << " pp " << pp << " stage " << stage;
        EXPECT_EQ(r.grads, r.params);
        EXPECT_EQ(r.optimizer, 2 * r.params);  // m and v, f32 like the weights
      }
    }
}

TEST(ParallelMemory, OptimizerStateShrinksWithDataParallelDegreeUnderZero) {
  auto dev = Device::create(DeviceKind::cpu);
  const RankMemory one = measure(*dev, 1, 1, 1, false, 0);
  for (int dp : {2, 4, 8}) {
    const RankMemory plain = measure(*dev, 1, 1, dp, false, 0);
    const RankMemory zero = measure(*dev, 1, 1, dp, true, 0);
    EXPECT_EQ(plain.optimizer, one.optimizer) << "dp " << dp;  // replicated without ZeRO
    // The flat range is padded to split evenly: at most 128 elements per rank more.
    EXPECT_LE(zero.optimizer, one.optimizer / dp + 2 * 128 * sizeof(float) + 256) << "dp " << dp;
    EXPECT_GE(zero.optimizer, one.optimizer / dp) << "dp " << dp;
    // ZeRO-1 keeps whole parameters and gradients (plus the padding of the flat range).
    EXPECT_GE(zero.params, one.params);
    EXPECT_LE(zero.params, one.params + dp * 128 * sizeof(float));
  }
}

}  // namespace
}  // namespace tessera
