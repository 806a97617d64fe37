// Loss-spike detection and the skipped data windows (optim/loss_spike.h).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "optim/loss_spike.h"
#include "runtime/error.h"

namespace tessera {
namespace {

TEST(LossSpike, ArmsOnceTheWindowIsFullAndJudgesByZScore) {
  LossSpikeDetector d(3.0, 4);
  for (double l : {2.0, 2.2, 1.8}) {
    EXPECT_FALSE(d.check(100.0).spike) << "judged before the window was full";
    d.accept(l);
  }
  d.accept(2.0);  // window {2.0, 2.2, 1.8, 2.0}: mean 2.0, population sd sqrt(0.02)
  const double sd = std::sqrt(0.02);
  const LossSpikeDetector::Verdict at = d.check(2.0 + 3.0 * sd - 1e-9);
  EXPECT_FALSE(at.spike);
  EXPECT_DOUBLE_EQ(at.mean, 2.0);
  EXPECT_NEAR(at.stddev, sd, 1e-15);
  EXPECT_TRUE(d.check(2.0 + 3.0 * sd + 1e-9).spike);
  EXPECT_FALSE(d.check(-50.0).spike) << "a drop is not a spike";
  EXPECT_FALSE(d.check(NAN).spike) << "non-finite values are train.on_nonfinite's";
}

TEST(LossSpike, WindowSlidesAndRestores) {
  LossSpikeDetector d(2.0, 3);
  for (double l : {10.0, 9.0, 1.0, 1.1, 0.9}) d.accept(l);
  EXPECT_EQ(d.window(), (std::vector<double>{1.0, 1.1, 0.9}));
  EXPECT_TRUE(d.check(1.5).spike) << "the old large losses left the window";
  LossSpikeDetector e(2.0, 3);
  e.restore(d.window());
  EXPECT_EQ(e.check(1.5).spike, d.check(1.5).spike);
  EXPECT_EQ(e.check(1.5).stddev, d.check(1.5).stddev);
  e.restore({5, 6, 7, 8, 9});
  EXPECT_EQ(e.window(), (std::vector<double>{7, 8, 9})) << "a longer saved window keeps its newest";
}

TEST(LossSpike, ConstantWindowNeedsARealRise) {
  LossSpikeDetector d(4.0, 3);
  for (int i = 0; i < 3; ++i) d.accept(3.0);
  EXPECT_FALSE(d.check(3.0).spike);
  EXPECT_FALSE(d.check(3.0 + 1e-9).spike) << "rounding-level differences are not spikes";
  EXPECT_TRUE(d.check(3.1).spike);
}

TEST(LossSpike, OffNeverFires) {
  LossSpikeDetector d(0.0, 2);
  for (double l : {1.0, 1.0, 1.0}) d.accept(l);
  EXPECT_FALSE(d.enabled());
  EXPECT_FALSE(d.check(1e9).spike);
}

TEST(DataSkips, ParseTextAndShift) {
  const auto s = data_skips_parse("10:14,10:12,30:31", "run.toml");
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0], (DataSkip{10, 14}));
  EXPECT_EQ(data_skips_text(s), "10:14,10:12,30:31");
  EXPECT_TRUE(data_skips_parse("", "run.toml").empty());
  // Step index k reads the batch of step k + shift(k).
  EXPECT_EQ(data_skips_shift(s, 9), 0);
  EXPECT_EQ(data_skips_shift(s, 10), 6);  // step 11 reads what step 17 would have
  EXPECT_EQ(data_skips_shift(s, 29), 6);
  EXPECT_EQ(data_skips_shift(s, 30), 7);
}

TEST(DataSkips, BadTextIsOneLineNamingIt) {
  for (const char* bad : {"5", "5:5", "7:3", "a:9", "-1:4", "3:4,", "1:2,,4:5", "4:9,2:3", "1:2:3"}) {
    try {
      data_skips_parse(bad, "run.toml");
      ADD_FAILURE() << "accepted " << bad;
    } catch (const UserError& e) {
      const std::string what = e.what();
      EXPECT_EQ(what.rfind("run.toml: train.skip_data: ", 0), 0u) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    }
  }
}

}  // namespace
}  // namespace tessera

namespace tessera {
namespace {

TEST(LossSpike, WindowTextRoundTripsExactlyAndRefusesDamage) {
  LossSpikeDetector d(3.0, 4), e(3.0, 4);
  for (double l : {2.0, 0.1 + 0.2, 1.0 / 3.0, 5e-310}) d.accept(l);
  e.restore(d.window_text(), "ck/index.h5");
  EXPECT_EQ(e.window(), d.window());
  e.restore("", "ck/index.h5");
  EXPECT_TRUE(e.window().empty());
  for (const char* bad : {"1.5,x", "1.5,,2", "nan", "1.5,"}) {
    try {
      e.restore(bad, "ck/index.h5");
      ADD_FAILURE() << "accepted " << bad;
    } catch (const UserError& err) {
      EXPECT_EQ(std::string(err.what()).rfind("ck/index.h5: loss_window: ", 0), 0u) << err.what();
    }
  }
}

TEST(DataSkips, InsertKeepsStepOrderAfterEqualStarts) {
  std::vector<DataSkip> s = {{4, 8}, {10, 12}};
  data_skips_insert(s, {10, 11});
  data_skips_insert(s, {2, 3});
  EXPECT_EQ(data_skips_text(s), "2:3,4:8,10:12,10:11");
}

}  // namespace
}  // namespace tessera
