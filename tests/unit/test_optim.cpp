// Learning-rate schedules.
#include <gtest/gtest.h>

#include <cmath>

#include "optim/config.h"

namespace tessera {
namespace {

TEST(LrSchedule, WarmupThenEachShape) {
  OptimConfig c;
  c.lr = 1.0;
  c.min_lr = 0.1;
  c.warmup_steps = 10;
  for (const char* s : {"cosine", "linear", "constant", "wsd"}) {
    c.schedule = s;
    EXPECT_DOUBLE_EQ(lr_at(c, 0, 110), 0.1) << s;
    EXPECT_DOUBLE_EQ(lr_at(c, 9, 110), 1.0) << s;
    EXPECT_DOUBLE_EQ(lr_at(c, 10, 110), 1.0) << s;
    EXPECT_NEAR(lr_at(c, 109, 110), c.schedule == "constant" ? 1.0 : 0.1, 1e-12) << s;
  }
  c.schedule = "cosine";
  EXPECT_NEAR(lr_at(c, 10 + 99 / 2.0, 110), 0.55, 0.01);
  c.schedule = "linear";
  EXPECT_NEAR(lr_at(c, 10 + 33, 110), 1.0 - 0.9 / 3, 1e-12);
  c.schedule = "wsd";
  c.decay_fraction = 0.2;
  EXPECT_DOUBLE_EQ(lr_at(c, 80, 110), 1.0);  // still stable at 70% of the post-warmup run
  EXPECT_LT(lr_at(c, 100, 110), 0.6);
}

}  // namespace
}  // namespace tessera
