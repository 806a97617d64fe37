// data/mixture: source probabilities, slot rounding and the global sample order of a mixture;
// [[data.sources]] in the config.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "data/mixture.h"
#include "data/shard.h"
#include "launch/config.h"
#include "runtime/error.h"
#include "test_files.h"

namespace tessera::data {
namespace {
namespace fs = std::filesystem;
using test::fresh_dir;


// A corpus of `tokens` tokens whose ids all lie in [base, base + 10): a sample tells its source.
std::string write_source(const std::string& dir, int base, int64_t tokens, int64_t vocab = 64) {
  ShardWriter writer(dir, vocab, 4096);
  std::vector<int32_t> doc;
  for (int64_t t = 0; t < tokens; ++t) doc.push_back(base + static_cast<int32_t>(t % 10));
  writer.append_document(doc.data(), doc.size());
  writer.finish();
  return dir;
}

TEST(DataMixture, TemperatureProbabilities) {
  const std::vector<int64_t> n = {1000000, 10000, 100};
  const auto p1 = mixture_probabilities(n, 1.0);
  const double total = 1010100;
  for (size_t i = 0; i < n.size(); ++i) EXPECT_NEAR(p1[i], n[i] / total, 1e-15);
  const auto p3 = mixture_probabilities(n, 3.0);
  double z = 0;
  for (int64_t x : n) z += std::cbrt(static_cast<double>(x));
  for (size_t i = 0; i < n.size(); ++i) EXPECT_NEAR(p3[i], std::cbrt(static_cast<double>(n[i])) / z, 1e-12);
  EXPECT_GT(p3[2], p1[2]);  // larger T flattens toward uniform
  const auto flat = mixture_probabilities(n, 1e6);
  for (double p : flat) EXPECT_NEAR(p, 1.0 / 3, 1e-4);
  // Huge corpora and a small temperature do not overflow.
  const auto big = mixture_probabilities({int64_t{1} << 60, int64_t{1} << 59}, 0.01);
  EXPECT_TRUE(std::isfinite(big[0]) && std::isfinite(big[1]));
  EXPECT_NEAR(big[0] + big[1], 1.0, 1e-12);
}

TEST(DataMixture, SlotsSumToTheBlockAndRoundWithinOneSlot) {
  const std::vector<std::vector<double>> cases = {
      {0.5, 0.5}, {1.0 / 3, 1.0 / 3, 1.0 / 3}, {0.999999, 0.000001}, {0.7, 0.2, 0.1, 0.0}};
  for (const auto& p : cases) {
    const auto slots = mixture_slots(p, Mixture::kBlock);
    int64_t sum = 0;
    for (size_t i = 0; i < p.size(); ++i) {
      sum += slots[i];
      if (p[i] > 0) {
        EXPECT_GE(slots[i], 1);
      }
      EXPECT_LE(std::abs(static_cast<double>(slots[i]) - p[i] * Mixture::kBlock), 1.0) << i;
    }
    EXPECT_EQ(sum, Mixture::kBlock);
  }
}

class DataMixtureCorpus : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fresh_dir("corpus");
    sources_ = {{"en", "en", write_source(root_ + "/en", 0, 5000), 6},
                {"de", "de", write_source(root_ + "/de", 10, 800), 3},
                {"zh", "zh", write_source(root_ + "/zh", 20, 301), 1}};
  }
  std::string root_;
  std::vector<SourceSpec> sources_;
};

// Every block holds exactly c_i samples of source i, and source i's own sample indices run
// through [b * c_i, (b + 1) * c_i) once each: nothing skipped, nothing read twice.
TEST_F(DataMixtureCorpus, EveryBlockHoldsEachSourceItsShareExactly) {
  const Mixture mix(sources_, 0, 16, 42);
  ASSERT_EQ(mix.size(), 3u);
  EXPECT_NEAR(mix.target_probability(0), 0.6, 1e-15);
  std::vector<int64_t> slots;
  for (size_t i = 0; i < 3; ++i) slots.push_back(std::llround(mix.probability(i) * Mixture::kBlock));
  for (int64_t b = 0; b < 3; ++b) {
    std::vector<std::set<int64_t>> seen(3);
    for (int64_t q = 0; q < Mixture::kBlock; ++q) {
      const auto [i, m] = mix.locate(b * Mixture::kBlock + q);
      ASSERT_LT(i, 3u);
      EXPECT_GE(m, b * slots[i]);
      EXPECT_LT(m, (b + 1) * slots[i]);
      seen[i].insert(m);
    }
    for (size_t i = 0; i < 3; ++i) EXPECT_EQ(static_cast<int64_t>(seen[i].size()), slots[i]) << "block " << b;
  }
}

TEST_F(DataMixtureCorpus, SamplesComeFromTheirSourceAndSlicesEqualTheWhole) {
  const int64_t T = 16, n = 512;
  const Mixture mix(sources_, 0, T, 7);
  std::vector<int32_t> in(n * T), tg(n * T);
  mix.samples(1000, n, in.data(), tg.data());
  std::map<size_t, int> counts;
  for (int64_t r = 0; r < n; ++r) {
    const size_t i = mix.locate(1000 + r).first;
    ++counts[i];
    for (int64_t t = 0; t < T; ++t) {
      EXPECT_EQ(in[r * T + t] / 10, static_cast<int32_t>(i));
      EXPECT_EQ(tg[r * T + t] / 10, static_cast<int32_t>(i));
    }
  }
  EXPECT_NEAR(counts[0] / double(n), 0.6, 0.08);
  EXPECT_NEAR(counts[2] / double(n), 0.1, 0.05);
  // Four data-parallel ranks reading their quarter see the rows of the whole batch.
  for (int part = 0; part < 4; ++part) {
    std::vector<int32_t> pin(n / 4 * T), ptg(n / 4 * T);
    mix.samples(1000 + part * n / 4, n / 4, pin.data(), ptg.data());
    EXPECT_TRUE(std::equal(pin.begin(), pin.end(), in.begin() + part * n / 4 * T));
    EXPECT_TRUE(std::equal(ptg.begin(), ptg.end(), tg.begin() + part * n / 4 * T));
  }
  // Same seed, same order; another seed, another one.
  const Mixture again(sources_, 0, T, 7), other(sources_, 0, T, 8);
  int differ = 0;
  for (int64_t k = 0; k < 2000; ++k) {
    EXPECT_EQ(mix.locate(k), again.locate(k));
    differ += mix.locate(k) != other.locate(k);
  }
  EXPECT_GT(differ, 100);
}

TEST_F(DataMixtureCorpus, TemperatureFollowsTokenCountsAndEpochsFollow) {
  const Mixture mix(sources_, 2.0, 16, 1);
  const auto expected = mixture_probabilities({5000, 800, 301}, 2.0);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_NEAR(mix.target_probability(i), expected[i], 1e-15);
    EXPECT_NEAR(mix.probability(i), expected[i], 1.0 / Mixture::kBlock);
    EXPECT_NEAR(mix.expected_epochs(i, 100000), 100000 * mix.probability(i) / mix.num_windows(i), 1e-9);
  }
  EXPECT_EQ(mix.num_windows(2), 300 / 16);
}

TEST_F(DataMixtureCorpus, OneSourceReadsAsTheSingleCorpusLoader) {
  const ShardSet set = ShardSet::open(sources_[0].path);
  const Loader loader(set, 16, 99);
  const Mixture mix({sources_[0]}, 0, 16, 99);
  std::vector<int32_t> a(16), b(16), ta(16), tb(16);
  for (int64_t k = 0; k < 700; k += 7) {
    loader.sample(k, a.data(), ta.data());
    mix.samples(k, 1, b.data(), tb.data());
    EXPECT_EQ(a, b);
    EXPECT_EQ(ta, tb);
  }
}

TEST_F(DataMixtureCorpus, BadSourcesAreNamed) {
  write_source(root_ + "/other_vocab", 0, 500, 300);
  std::vector<SourceSpec> bad = sources_;
  bad[1].path = root_ + "/other_vocab";
  try {
    Mixture mix(bad, 0, 16, 1);
    ADD_FAILURE() << "expected a UserError";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("\"de\""), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("vocab_size"), std::string::npos) << e.what();
  }
  bad = sources_;
  bad[2].weight = 0;
  EXPECT_THROW(Mixture(bad, 0, 16, 1), UserError);
  EXPECT_NO_THROW(Mixture(bad, 1.0, 16, 1));  // a temperature needs no weights
  bad = sources_;
  bad[2].path = root_ + "/missing";
  EXPECT_THROW(Mixture(bad, 0, 16, 1), UserError);
  try {
    Mixture mix(sources_, 0, 400, 1);  // zh has 301 tokens: not one window
    ADD_FAILURE() << "expected a UserError";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("source \"zh\""), std::string::npos) << e.what();
  }
}

TEST(DataMixtureConfig, SourcesParseValidateAndRoundTrip) {
  const std::string text =
      "[data]\ntemperature = 3.0\n"
      "[[data.sources]]\nname = \"en\"\npath = \"c/en\"\nvalid = \"v/en\"\n"
      "[[data.sources]]\nname = \"zh-web\"\nlanguage = \"zh\"\npath = \"c/zh\"\n";
  const RunConfig cfg = config_parse(text, "mix.toml");
  ASSERT_EQ(cfg.data.sources.size(), 2u);
  EXPECT_EQ(cfg.data.sources[0].language, "en");
  EXPECT_EQ(cfg.data.sources[0].valid, "v/en");
  EXPECT_EQ(cfg.data.sources[1].language, "zh");
  EXPECT_EQ(cfg.data.temperature, 3.0);
  const RunConfig again = config_parse(config_to_toml(cfg), "resolved.toml");
  ASSERT_EQ(again.data.sources.size(), 2u);
  EXPECT_EQ(again.data.sources[1].name, "zh-web");
  EXPECT_EQ(again.data.sources[1].path, "c/zh");
  EXPECT_EQ(config_to_toml(again), config_to_toml(cfg));

  const auto error_of = [](const std::string& t) {
    try {
      config_parse(t, "bad.toml");
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of("[[data.sources]]\nname = \"a\"\npath = \"x\"\nwieght = 1\n").find("wieght"), std::string::npos);
  EXPECT_NE(error_of("[[data.sources]]\npath = \"x\"\n").find("name is not set"), std::string::npos);
  EXPECT_NE(error_of("[[data.sources]]\nname = \"a\"\n").find("path is not set"), std::string::npos);
  EXPECT_NE(error_of("[[data.sources]]\nname = \"a\"\npath = \"x\"\nweight = 1\n[[data.sources]]\nname = \"b\"\npath = \"y\"\n")
                .find("\"b\" needs a weight"),
            std::string::npos);
  EXPECT_NE(error_of("[data]\ntemperature = 2.0\n[[data.sources]]\nname = \"a\"\npath = \"x\"\nweight = 1\n").find("one or the other"),
            std::string::npos);
  EXPECT_NE(error_of("[data]\ntrain = \"t\"\n[[data.sources]]\nname = \"a\"\npath = \"x\"\n").find("either data.train"),
            std::string::npos);
  EXPECT_NE(error_of("[[data.sources]]\nname = \"a\"\npath = \"x\"\n[[data.sources]]\nname = \"a\"\npath = \"y\"\nweight = 1\n").find("second source"),
            std::string::npos);
}

}  // namespace
}  // namespace tessera::data
