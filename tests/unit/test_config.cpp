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

// A family sets its components; an explicit key wins wherever it stands (before or after
// family, in the file or on the command line), and the resolved TOML reloads to the same model.
TEST(Config, FamilyPresetThenExplicitKeys) {
  const RunConfig a = config_parse("[model]\nn_kv_head = 2\nnorm_eps = 1e-6\nfamily = \"llama\"\n", "a.toml");
  EXPECT_EQ(a.model.norm, "rmsnorm");
  EXPECT_EQ(a.model.position, "rope");
  EXPECT_EQ(a.model.activation, "swiglu");
  EXPECT_FALSE(a.model.bias);
  EXPECT_FALSE(a.model.tie_embeddings);
  EXPECT_EQ(a.model.n_kv_head, 2);
  EXPECT_EQ(a.model.norm_eps, 1e-6);
  const RunConfig b = config_load("", {"model.family=neox", "model.residual=sequential"});
  EXPECT_EQ(b.model.rope_fraction, 0.25);
  EXPECT_EQ(b.model.activation, "gelu");
  EXPECT_EQ(b.model.residual, "sequential");
  const RunConfig c = config_load("", {"model.rope_fraction=0.5", "model.family=neox"});
  EXPECT_EQ(c.model.rope_fraction, 0.5) << "an explicit key before the family still wins";
  const RunConfig d = config_load("", {"model.family=bloom"});
  EXPECT_TRUE(d.model.embedding_norm);
  EXPECT_EQ(d.model.position, "alibi");
  for (const RunConfig& x : {a, b, c, d}) {
    const RunConfig back = config_parse(config_to_toml(x), "resolved");
    EXPECT_EQ(config_to_toml(back), config_to_toml(x));
  }
  // Configs written before the components existed name the norm's epsilon layernorm_eps.
  EXPECT_EQ(config_parse("[model]\nlayernorm_eps = 1e-6\n", "old").model.norm_eps, 1e-6);
  EXPECT_EQ(config_load("", {}).model.position, "learned") << "the default stays GPT-2";
}

TEST(Config, ComponentCombinationsThatMakeNoSense) {
  EXPECT_NE(error_of("[model]\nn_head = 4\nn_kv_head = 3\n").find("n_kv_head = 3 does not divide model.n_head = 4"),
            std::string::npos);
  EXPECT_NE(error_of("[model]\nposition = \"rope\"\nrope_fraction = 0.0\n").find("rope_fraction must be in (0, 1]"),
            std::string::npos);
  EXPECT_NE(error_of("[model]\nposition = \"rope\"\nrope_fraction = 1.5\n").find("out of range"), std::string::npos);
  // d_model 128 / 4 heads = 32; 0.1 of it is 3.2 dimensions, 0.0625 is 2, 0.09375 is 3 (odd).
  EXPECT_NE(error_of("[model]\nposition = \"rope\"\nrope_fraction = 0.1\n").find("even whole number"), std::string::npos);
  EXPECT_NE(error_of("[model]\nposition = \"rope\"\nrope_fraction = 0.09375\n").find("even whole number"), std::string::npos);
  EXPECT_EQ(error_of("[model]\nposition = \"rope\"\nrope_fraction = 0.0625\n"), "");
  EXPECT_NE(error_of("[model]\nfamily = \"gpt3\"\n").find("allowed: gpt2, llama, neox, bloom"), std::string::npos);
  EXPECT_NE(error_of("[model]\nactivation = \"relu\"\n").find("allowed: gelu_tanh, gelu, swiglu"), std::string::npos);
  EXPECT_NE(error_of("[model]\nd_model = 96\nn_head = 8\n[train]\ndevice = \"cuda\"\nprecision = \"bf16\"\n")
                .find("head size d_model / n_head = 12"),
            std::string::npos);
  EXPECT_NE(error_of("[model]\nd_model = 1088\nn_head = 2\n[train]\ndevice = \"cuda\"\nprecision = \"bf16\"\n")
                .find("at most 256"),
            std::string::npos);
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

// Each published-run recipe describes exactly the published model: its parameter count from the
// registry equals the count of the released checkpoint (the sum of its tensors' sizes), and its
// batch and schedule hold the figures its comments cite.
TEST(Config, RecipesDescribeThePublishedModels) {
  struct Recipe {
    const char* file;
    int64_t parameters;
    int64_t tokens_per_step;
    double tokens;  // the run's total
  };
  const Recipe recipes[] = {
      {"pythia-160m.toml", 162322944, 2097152, 299.9e9},    // EleutherAI/pythia-160m
      {"pythia-1b.toml", 1011781632, 2097152, 299.9e9},     // EleutherAI/pythia-1b
      {"bloom-560m.toml", 559214592, 524288, 341e9},        // bigscience/bloom-560m
      {"tinyllama-1.1b.toml", 1100048384, 2097152, 3e12},   // TinyLlama/TinyLlama-1.1B
      {"llama-3.2-1b.toml", 1235814400, 4194304, 2e12},     // meta-llama/Llama-3.2-1B
  };
  for (const Recipe& r : recipes) {
    const RunConfig c = config_load(std::string(TESSERA_SOURCE_DIR "/examples/") + r.file, {});
    EXPECT_EQ(c.model.num_parameters(), r.parameters) << r.file;
    EXPECT_EQ(c.model.padded_vocab(), c.model.vocab_size) << r.file << ": the published vocabulary needs no padding";
    EXPECT_EQ(c.train.global_batch * c.model.seq_len, r.tokens_per_step) << r.file;
    EXPECT_NEAR(static_cast<double>(c.train.steps) * r.tokens_per_step / r.tokens, 1.0, 1e-3) << r.file;
  }
}

}  // namespace
}  // namespace tessera

namespace tessera {
namespace {

TEST(Config, LossSpikeKeys) {
  const RunConfig c = config_load(write_config("[train]\nspike_zscore = 5\nspike_window = 50\non_spike = \"rewind\"\n"
                                               "skip_data = \"100:140\"\n"),
                                  {});
  EXPECT_DOUBLE_EQ(c.train.spike_zscore, 5);
  EXPECT_EQ(c.train.spike_window, 50);
  EXPECT_EQ(c.train.on_spike, "rewind");
  EXPECT_EQ(c.train.skip_data, "100:140");
  const std::string bad = error_of("[train]\nskip_data = \"140:100\"\n");
  EXPECT_NE(bad.find("train.skip_data: \"140:100\" is not FROM:TO with FROM < TO"), std::string::npos) << bad;
  EXPECT_NE(error_of("[train]\non_spike = \"ignore\"\n").find("train.on_spike"), std::string::npos);
  EXPECT_NE(error_of("[train]\nspike_window = 1\n").find("train.spike_window"), std::string::npos);
}

}  // namespace
}  // namespace tessera
