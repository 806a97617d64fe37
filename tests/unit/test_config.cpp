// Config parsing: defaults, overrides, and one-line errors naming file, key and what is allowed.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "launch/config.h"
#include "runtime/error.h"

namespace tessera {
namespace {

std::string write_config(const std::string& text) {
  static int n = 0;
  const std::string path = ::testing::TempDir() + "/cfg_" + std::to_string(n++) + ".toml";
  std::ofstream(path) << text;
  return path;
}

std::string error_of(const std::string& text, std::vector<std::string> overrides = {}) {
  try {
    config_load(write_config(text), overrides);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(Config, ParsesAndOverrides) {
  const auto path = write_config("[model]\nn_layer = 3\n[optim]\nlr = 1e-3\n");
  RunConfig c = config_load(path, {"train.steps=7", "optim.schedule=wsd", "log.dir=\"x/y\""});
  EXPECT_EQ(c.model.n_layer, 3);
  EXPECT_DOUBLE_EQ(c.optim.lr, 1e-3);
  EXPECT_EQ(c.train.steps, 7);
  EXPECT_EQ(c.optim.schedule, "wsd");
  EXPECT_EQ(c.log.dir, "x/y");
}

TEST(Config, ResolvedTomlRoundTrips) {
  RunConfig c = config_load(write_config("[model]\nd_model = 96\nn_head = 3\n[train]\nseed = 5\n"), {});
  RunConfig d = config_parse(config_to_toml(c), "resolved");
  EXPECT_EQ(config_to_toml(c), config_to_toml(d));
  EXPECT_EQ(d.model.d_model, 96);
  EXPECT_EQ(d.train.seed, 5);
}

TEST(Config, UnknownKeyNamesFileKeyAndAllowed) {
  const std::string e = error_of("[train]\nstepz = 3\n");
  EXPECT_NE(e.find(".toml: unknown key train.stepz"), std::string::npos) << e;
  EXPECT_NE(e.find("steps"), std::string::npos) << e;
}

TEST(Config, UnknownSection) {
  EXPECT_NE(error_of("[trian]\nsteps = 3\n").find("unknown section [trian]"), std::string::npos);
}

TEST(Config, WrongTypeAndRange) {
  EXPECT_NE(error_of("[train]\nsteps = \"ten\"\n").find("train.steps must be an integer"),
            std::string::npos);
  EXPECT_NE(error_of("[model]\nn_layer = 0\n").find("model.n_layer = 0 is out of range"),
            std::string::npos);
  EXPECT_NE(error_of("[optim]\nschedule = \"cosin\"\n").find("allowed: cosine, linear"),
            std::string::npos);
}

TEST(Config, ImpossibleCombinations) {
  EXPECT_NE(error_of("[model]\nd_model = 10\nn_head = 3\n").find("not divisible"), std::string::npos);
  EXPECT_NE(error_of("[train]\nprecision = \"fp64\"\ndevice = \"cuda\"\n").find("fp64"),
            std::string::npos);
  EXPECT_NE(error_of("[train]\nmicro_batch = 4\nglobal_batch = 6\n").find("multiple"), std::string::npos);
}

TEST(Config, SyntaxErrorHasLine) {
  const std::string e = error_of("[train]\nsteps = = 3\n");
  EXPECT_NE(e.find(":2:"), std::string::npos) << e;
}

TEST(Config, BadOverride) {
  EXPECT_NE(error_of("", {"steps=3"}).find("expected section.key=value"), std::string::npos);
  EXPECT_NE(error_of("", {"train.steps=-1"}).find("out of range"), std::string::npos);
}

// Every shipped example parses, and the GPT-2 124M recipe holds the figures its comments cite
// (GPT-3 Small: 0.5M-token batches, 375M warm-up tokens, decay to 10%; 10B tokens in all).
TEST(Config, ExamplesParseAndTheRecipeHoldsItsFigures) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(TESSERA_SOURCE_DIR "/examples"))
    if (e.path().extension() == ".toml") {
      EXPECT_NO_THROW(config_load(e.path().string(), {})) << e.path();
      ++n;
    }
  EXPECT_GE(n, 2);
  const RunConfig c = config_load(TESSERA_SOURCE_DIR "/examples/gpt2-124m.toml", {});
  const double tokens_per_step = static_cast<double>(c.train.global_batch * c.model.seq_len);
  EXPECT_EQ(tokens_per_step, 524288);
  EXPECT_NEAR(c.train.steps * tokens_per_step / 10e9, 1.0, 1e-3);
  EXPECT_NEAR(c.optim.warmup_steps * tokens_per_step / 375e6, 1.0, 1e-3);
  EXPECT_DOUBLE_EQ(c.optim.min_lr, 0.1 * c.optim.lr);
  EXPECT_EQ(c.model.num_parameters() / 1000000, 124);
}

}  // namespace
}  // namespace tessera
