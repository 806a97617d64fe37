// The run report (launch/run_report.h): the loss chart's geometry and the model card's figures,
// from hand-written run files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "launch/config.h"
#include "launch/run_report.h"
#include "launch/tensorboard.h"
#include "runtime/error.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void put(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// The (x, y) pairs of the polyline with this id.
std::vector<std::pair<double, double>> polyline(const std::string& svg, const std::string& id) {
  std::smatch m;
  EXPECT_TRUE(std::regex_search(svg, m, std::regex("id=\"" + id + "\"[^>]*points=\"([^\"]*)\"")));
  std::vector<std::pair<double, double>> out;
  std::stringstream in(m[1].str());
  std::string pair;
  while (in >> pair) {
    const size_t comma = pair.find(',');
    out.push_back({std::stod(pair.substr(0, comma)), std::stod(pair.substr(comma + 1))});
  }
  return out;
}

TEST(RunReport, ChartPlacesEveryPointWithHigherLossHigherUp) {
  const std::vector<LossPoint> train = {{10, 7.5}, {20, 6.0}, {30, 5.25}, {40, 5.5}, {300, 3.0}};
  const std::vector<LossPoint> valid = {{100, 4.0}, {300, 3.5}};
  const std::string svg = loss_chart_svg(train, valid);
  const auto t = polyline(svg, "train"), v = polyline(svg, "valid");
  ASSERT_EQ(t.size(), train.size());
  ASSERT_EQ(v.size(), valid.size());
  for (size_t i = 1; i < t.size(); ++i) EXPECT_GT(t[i].first, t[i - 1].first);
  // Steps map linearly onto x (from step 0).
  const double per_step = (t.back().first - t.front().first) / 290.0;
  EXPECT_NEAR(t[1].first - t[0].first, 10 * per_step, 0.11);
  EXPECT_NEAR(v[0].first, t[0].first + 90 * per_step, 0.11);
  // Loss maps linearly onto y, downwards: 7.5 is at the top of the data, 3.0 at the bottom.
  const double per_nat = (t.back().second - t.front().second) / (3.0 - 7.5);
  EXPECT_LT(per_nat, 0);
  EXPECT_NEAR(t[2].second, t[0].second + (5.25 - 7.5) * per_nat, 0.11);
  EXPECT_NEAR(v[1].second, t[0].second + (3.5 - 7.5) * per_nat, 0.11);
  EXPECT_GT(t[3].second, 0);
  // Round tick labels on both axes, and one marker per validation point.
  EXPECT_NE(svg.find(">100</text>"), std::string::npos);
  EXPECT_NE(svg.find(">200</text>"), std::string::npos);
  EXPECT_NE(svg.find(">4</text>"), std::string::npos);
  EXPECT_NE(svg.find(">6</text>"), std::string::npos);
  size_t circles = 0;
  for (size_t at = svg.find("<circle"); at != std::string::npos; at = svg.find("<circle", at + 1)) ++circles;
  EXPECT_EQ(circles, valid.size());
  // Without validation there is no second line and no legend entry for it.
  const std::string alone = loss_chart_svg(train, {});
  EXPECT_EQ(alone.find("id=\"valid\""), std::string::npos);
  EXPECT_EQ(alone.find("validation"), std::string::npos);
  // A long run: 4500 logged steps become 900 points, each the mean of 5 (said in the title).
  std::vector<LossPoint> many;
  for (int64_t s = 1; s <= 4500; ++s) many.push_back({s, s % 5 == 0 ? 2.0 : 3.0});
  const std::string big = loss_chart_svg(many, {});
  const auto b = polyline(big, "train");
  ASSERT_EQ(b.size(), 900u);
  EXPECT_NEAR(b.front().second, b.back().second, 0.11);  // every group averages to 2.8
  EXPECT_NE(big.find("mean of 5 logged steps a point"), std::string::npos);
  // A single step still draws (the step axis is widened).
  EXPECT_EQ(polyline(loss_chart_svg({{1, 2.0}}, {}), "train").size(), 1u);
}

class RunDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() / ("tessera_report_" + std::to_string(::getpid()))).string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    RunConfig cfg;
    cfg.model.n_layer = 2;
    cfg.model.d_model = 64;
    cfg.model.n_head = 4;
    cfg.model.vocab_size = 257;
    cfg.model.seq_len = 32;
    cfg.train.steps = 40;
    cfg.train.micro_batch = 4;
    cfg.train.global_batch = 8;
    cfg.data.train = "tr";
    cfg.log.dir = dir_;
    put(dir_ + "/config.toml", config_to_toml(cfg));
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST_F(RunDir, CardCarriesTheRunsOwnFigures) {
  // Steps 10-30, then a resume from step 20 that logged steps 30 and 40 again: the later
  // records of a step win.
  put(dir_ + "/metrics.jsonl",
      "{\"step\": 10, \"loss\": 5.5, \"tokens_per_s\": 1000, \"mfu\": 0.1, \"step_ms\": 250, \"compute_ms\": 100, "
      "\"exposed_comm_ms\": 40, \"bubble_ms\": 10}\n"
      "{\"step\": 20, \"loss\": 4.5, \"tokens_per_s\": 1200, \"mfu\": 0.12, \"step_ms\": 210}\n"
      "{\"step\":20,\"val_loss\":4.75,\"val_loss_by_language\":{\"en\":4.5,\"de\":5.0}}\n"
      "{\"step\": 30, \"loss\": 9.0, \"tokens_per_s\": 1100, \"mfu\": 0.11, \"step_ms\": 230}\n"
      "{\"step\": 30, \"loss\": 4.25, \"tokens_per_s\": 1300, \"mfu\": 0.13, \"step_ms\": 200}\n"
      "{\"step\": 40, \"tokens\": 10240, \"loss\": 4.125, \"tokens_per_s\": 1400, \"mfu\": 0.14, \"step_ms\": 190}\n"
      "{\"step\":40,\"val_loss\":4.875,\"val_loss_by_language\":{\"en\":4.625,\"de\":5.125}}\n");
  put(dir_ + "/mixture.json",
      R"({"temperature": 3.0, "sources": [)"
      R"({"name": "en", "language": "en", "tokens": 1234567, "probability": 0.625, "expected_epochs": 0.5},)"
      R"({"name": "de|x", "language": "de", "tokens": 2000, "probability": 0.375, "expected_epochs": 1.25}]})");
  put(dir_ + "/launches.jsonl",
      R"({"event":"start","time":"2026-11-23T10:00:00Z","host":"node1","world":4,"layout":"world 4 = dp 4","device":"cpu","step":0,"resumed_from":"","version":"0.1.0","commit":"abc"})"
      "\n"
      R"({"event":"end","time":"2026-11-23T10:05:00Z","how":"stopped by a signal","step":30})"
      "\n"
      R"({"event":"start","time":"2026-11-23T11:00:00Z","host":"node2","world":2,"layout":"world 2 = dp 2","device":"cpu","step":20,"resumed_from":"ck/step_00000020","version":"0.1.0","commit":"abc"})"
      "\n"
      R"({"event":"start","time":"2026-11-23T12:00:00Z","host":"node3","hosts":["node3","node4","node5"],"world":2,"layout":"world 2 = dp 2","device":"cpu","step":20,"resumed_from":"ck/step_00000020","version":"0.1.0","commit":"def"})"
      "\n"
      R"({"event":"end","time":"2026-11-23T12:30:00Z","how":"finished","step":40})"
      "\n");
  const RunSummary sum = write_run_report(dir_);
  EXPECT_EQ(sum.step, 40);
  EXPECT_EQ(sum.tokens, 10240);
  EXPECT_DOUBLE_EQ(sum.train_loss, 4.125);
  EXPECT_DOUBLE_EQ(sum.best_val_loss, 4.75);
  EXPECT_DOUBLE_EQ(sum.tokens_per_s, 1250);
  const std::string card = slurp(dir_ + "/README.md");
  EXPECT_NE(card.find("language:\n- en\n- de\n"), std::string::npos) << card;
  EXPECT_NE(card.find("40 of 40 planned steps, 10,240 tokens"), std::string::npos) << card;  // 40 x 8 x 32
  EXPECT_NE(card.find("| training, last logged | 40 | 4.1250 |"), std::string::npos) << card;
  EXPECT_NE(card.find("| validation, last | 40 | 4.8750 |"), std::string::npos) << card;
  EXPECT_NE(card.find("| validation, best | 20 | 4.7500 |"), std::string::npos) << card;
  EXPECT_NE(card.find("| de | 5.1250 |"), std::string::npos) << card;
  EXPECT_NE(card.find("| en | 1,234,567 | 0.6250 | 0.500 |"), std::string::npos) << card;
  EXPECT_NE(card.find("| de\\|x | de | 2,000 | 0.3750 | 1.250 |"), std::string::npos) << card;
  // Medians of steps 10-40 (step 30's later record): {1000, 1200, 1300, 1400} tokens/s.
  EXPECT_NE(card.find("1,250 tokens/s, 205 ms per step, MFU 12.5%"), std::string::npos) << card;
  // Only step 10 has the breakdown: its figures are the medians.
  EXPECT_NE(card.find("compute 100.0 ms, communication not hidden 40.0 ms, pipeline bubble 10.0 ms"), std::string::npos) << card;
  EXPECT_NE(card.find("stopped by a signal at step 30"), std::string::npos) << card;
  EXPECT_NE(card.find("| 20 (ck/step_00000020) | no end record (an error, a crash or a kill) |"), std::string::npos) << card;
  EXPECT_NE(card.find("finished at step 40"), std::string::npos) << card;
  EXPECT_NE(card.find("| 3 hosts: node3, node4, node5 |"), std::string::npos) << card;
  EXPECT_NE(card.find("a later launch ran commit def"), std::string::npos) << card;
  EXPECT_NE(card.find("mpirun -np 2 build/tessera train"), std::string::npos) << card;
  // The chart holds the four distinct steps, step 30 once.
  EXPECT_EQ(polyline(slurp(dir_ + "/loss.svg"), "train").size(), 4u);
  EXPECT_FALSE(fs::exists(dir_ + "/README.md.partial"));
}

TEST_F(RunDir, MissingOrDamagedInputsAreNamed) {
  auto message = [&] {
    try {
      write_run_report(dir_);
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message().find("metrics.jsonl: cannot read"), std::string::npos);
  put(dir_ + "/metrics.jsonl", "{\"step\": 1, \"loss\": 3.0}\n{\"loss\": 2.0}\n");
  EXPECT_NE(message().find("metrics.jsonl:2: not a metrics record"), std::string::npos) << message();
  put(dir_ + "/metrics.jsonl", "{\"step\":1,\"val_loss\":3.0}\n");
  EXPECT_NE(message().find("no training step logged yet"), std::string::npos) << message();
  fs::remove(dir_ + "/config.toml");
  EXPECT_NE(message().find("config.toml: missing"), std::string::npos) << message();
  EXPECT_FALSE(fs::exists(dir_ + "/README.md"));
}

TEST_F(RunDir, TornMetricsLinesAreSkippedAndCounted) {
  put(dir_ + "/metrics.jsonl", "{\"step\": 1, \"loss\": 3.0}\n{\"step\": 2, \"lo\n{\"step\": 2, \"loss\": 2.5}\n");
  write_run_report(dir_);
  const std::string card = slurp(dir_ + "/README.md");
  EXPECT_NE(card.find("(1 damaged line of metrics.jsonl skipped"), std::string::npos) << card;
  EXPECT_NE(card.find("| training, last logged | 2 | 2.5000 |"), std::string::npos) << card;
}

TEST(RunReport, RunsTableInOrderOfTrainingFlops) {
  RunSummary big{"runs/big", 2000000, 100, 6400000, 7.7e13, 3.25, 3.5, 1200, 0.25};
  RunSummary small{"runs/small", 1000000, 100, 3200000, 1.9e13, 3.75, NAN, NAN, NAN};
  const std::string t = runs_table({big, small});
  const size_t at_small = t.find("| runs/small |"), at_big = t.find("| runs/big |");
  ASSERT_NE(at_small, std::string::npos) << t;
  ASSERT_NE(at_big, std::string::npos) << t;
  EXPECT_LT(at_small, at_big) << t;
  EXPECT_NE(t.find("| runs/big | 2,000,000 | 100 | 6,400,000 | 7.7e+13 | 3.2500 | 3.5000 | 1200 | 25.0% |"), std::string::npos) << t;
  EXPECT_NE(t.find("| 3.7500 | - | - | - |"), std::string::npos) << t;
}

// TFRecord framing checksums with CRC-32C; the event files themselves are read back by
// TensorBoard in tests/reference (reference_tensorboard).
TEST(TensorBoard, Crc32cCheckValue) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
}

}  // namespace
}  // namespace tessera
