// data/hf_*: Hugging Face byte-level BPE tokenizer.json files, on tiny handwritten ones whose
// ids can be worked out by hand. tests/reference/hf_tokenizer_check.py holds the comparison
// with the tokenizers library itself.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "data/hf_bpe.h"
#include "data/hf_normalizer.h"
#include "data/hf_regex.h"
#include "data/tokenizer.h"
#include "runtime/error.h"

namespace tessera::data {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using Ids = std::vector<int32_t>;

std::string utf8_of(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s.push_back(static_cast<char>(cp));
  } else {
    s.push_back(static_cast<char>(0xC0 | cp >> 6));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return s;
}

// Byte-level spelling of raw bytes ("Ġ" for a space).
std::string byte_level(const std::string& bytes) {
  std::string s;
  for (unsigned char b : bytes) s += utf8_of(hf_byte_char(b));
  return s;
}

// Vocab: the 256 bytes (id = byte value), then bc ab Ġa Ġab abc, then <|endoftext|> as an
// added special token. Merges in priority order: b+c, a+b, Ġ+a, Ġa+b.
json tiny_tokenizer() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level(std::string(1, static_cast<char>(b)))] = b;
  vocab["bc"] = 256;
  vocab["ab"] = 257;
  vocab[byte_level(" a")] = 258;
  vocab[byte_level(" ab")] = 259;
  vocab["abc"] = 260;
  json root;
  root["version"] = "1.0";
  root["added_tokens"] = json::array({{{"id", 261},
                                       {"content", "<|endoftext|>"},
                                       {"single_word", false},
                                       {"lstrip", false},
                                       {"rstrip", false},
                                       {"normalized", true},
                                       {"special", true}}});
  root["normalizer"] = nullptr;
  root["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  root["post_processor"] = {{"type", "ByteLevel"}, {"trim_offsets", false}};
  root["decoder"] = {{"type", "ByteLevel"}};
  root["model"] = {
      {"type", "BPE"},
      {"dropout", nullptr},
      {"unk_token", nullptr},
      {"vocab", vocab},
      {"merges", json::array({"b c", "a b", byte_level(" ") + " a", byte_level(" a") + " b"})}};
  return root;
}

class HfTokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "tessera_hf_" + std::to_string(::getpid());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& contents) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << contents;
    return path;
  }
  std::unique_ptr<Tokenizer> load(const json& root) {
    return tokenizer_create("hf:" + write("tokenizer.json", root.dump()));
  }
  // The one-line UserError that loading `contents` gives.
  std::string load_error(const std::string& contents) {
    const std::string path = write("bad.json", contents);
    try {
      tokenizer_create("hf:" + path);
    } catch (const UserError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(path), std::string::npos) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
      return what;
    }
    ADD_FAILURE() << "expected a UserError for " << contents.substr(0, 80);
    return "";
  }

  std::string dir_;
};

TEST_F(HfTokenizerTest, MergesApplyInPriorityOrder) {
  const auto tok = load(tiny_tokenizer());
  // a b c: b+c outranks a+b, and nothing merges a with bc.
  EXPECT_EQ(tok->encode("abc"), (Ids{'a', 256}));
  // Ġ a b: a+b outranks Ġ+a although Ġ+a comes first; nothing merges Ġ with ab.
  EXPECT_EQ(tok->encode(" ab"), (Ids{' ', 257}));
  // The GPT-2 regex splits "ab" and " abc": b+c, then Ġ+a; Ġa+bc is no merge.
  EXPECT_EQ(tok->encode("ab abc"), (Ids{257, 258, 256}));
  EXPECT_EQ(tok->encode(""), Ids{});
  EXPECT_EQ(tok->encode("xyz!"), (Ids{'x', 'y', 'z', '!'}));  // the regex keeps ! apart
}

TEST_F(HfTokenizerTest, ReportsSpecSizeAndEndOfText) {
  const json root = tiny_tokenizer();
  const std::string path = write("tokenizer.json", root.dump());
  const auto tok = tokenizer_create("hf:" + path);
  EXPECT_EQ(tok->name(), "hf:" + path);
  EXPECT_EQ(tok->vocab_size(), 262);
  EXPECT_EQ(tok->eod_id(), 261);
}

TEST_F(HfTokenizerTest, SpecialTokensSplitOutBeforePreTokenizing) {
  const auto tok = load(tiny_tokenizer());
  EXPECT_EQ(tok->encode("ab<|endoftext|>c"), (Ids{257, 261, 'c'}));
  EXPECT_EQ(tok->encode("<|endoftext|><|endoftext|>"), (Ids{261, 261}));
  // Not the whole token: plain bytes.
  const Ids partial = tok->encode("<|endoftext");
  EXPECT_EQ(std::count(partial.begin(), partial.end(), 261), 0);
}

TEST_F(HfTokenizerTest, DecodeRoundTripsAndDropsEndOfText) {
  const auto tok = load(tiny_tokenizer());
  for (const std::string text :
       {"ab abc", " ab", "héllo wörld\n\t", "日本語 テスト 👍🏽"}) {
    const Ids ids = tok->encode(text);
    EXPECT_EQ(tok->decode(ids.data(), ids.size()), text);
  }
  const Ids with_eod = {257, 261, 'c'};
  EXPECT_EQ(tok->decode(with_eod.data(), with_eod.size()), "abc");
  const Ids half = {0xE6};  // the first byte of 日: allowed to be invalid UTF-8
  EXPECT_EQ(tok->decode(half.data(), half.size()), "\xE6");
}

TEST_F(HfTokenizerTest, InvalidUtf8IsRepairedFirst) {
  const auto tok = load(tiny_tokenizer());
  EXPECT_EQ(tok->encode("a\xFF\xFE b"), tok->encode("a\xEF\xBF\xBD b"));
  EXPECT_EQ(tok->encode("\xE6\x97"), tok->encode("\xEF\xBF\xBD"));
}

TEST_F(HfTokenizerTest, LegacyAndPairMergesAgree) {
  json pairs = tiny_tokenizer();
  json merges = json::array();
  for (const json& m : pairs["model"]["merges"]) {
    const std::string s = m.get<std::string>();
    merges.push_back(json::array({s.substr(0, s.find(' ')), s.substr(s.find(' ') + 1)}));
  }
  pairs["model"]["merges"] = merges;
  const auto legacy = load(tiny_tokenizer());
  const auto paired = load(pairs);
  for (const std::string text : {"abc", " ab", "ab abc abcabc"})
    EXPECT_EQ(legacy->encode(text), paired->encode(text)) << text;
}

TEST_F(HfTokenizerTest, IgnoreMergesTakesWholeVocabWords) {
  json root = tiny_tokenizer();
  EXPECT_EQ(load(root)->encode("abc"), (Ids{'a', 256}));
  root["model"]["ignore_merges"] = true;
  EXPECT_EQ(load(root)->encode("abc"), Ids{260});
  EXPECT_EQ(load(root)->encode(" abc"), (Ids{258, 256}));  // " abc" is not in the vocab
}

TEST_F(HfTokenizerTest, SplitSequenceAndNfcNormalizer) {
  json root = tiny_tokenizer();
  // BLOOM's pattern, whose nested class Oniguruma reads as a union.
  root["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       json::array({{{"type", "Split"},
                     {"pattern", {{"Regex", " ?[^(\\s|[.,!?…。，、।۔،])]+"}}},
                     {"behavior", "Isolated"},
                     {"invert", false}},
                    {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}})}};
  const auto split = load(root);
  // "(ab)" splits at the parentheses, which the class excludes: ( ab ) — not "(ab)" whole.
  EXPECT_EQ(split->encode("(ab)"), (Ids{'(', 257, ')'}));
  EXPECT_EQ(split->encode("ab, abc"), (Ids{257, ',', 258, 256}));

  const std::string composed = "\xC3\xA9";     // é
  const std::string decomposed = "e\xCC\x81";  // e + combining acute
  EXPECT_NE(split->encode(composed), split->encode(decomposed));
  root["normalizer"] = {{"type", "NFC"}};
  const auto nfc = load(root);
  EXPECT_EQ(nfc->encode(composed), nfc->encode(decomposed));
}

TEST_F(HfTokenizerTest, ConcurrentEncodesAgree) {
  const auto tok = load(tiny_tokenizer());
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i)
    texts.push_back("ab abc " + std::to_string(i * 7919) + " abcab<|endoftext|> ñ" +
                    std::string(i % 13, 'a') + "bc");
  std::vector<Ids> expected;
  for (const auto& t : texts) expected.push_back(tok->encode(t));
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round)
        for (size_t i = 0; i < texts.size(); ++i)
          if (tok->encode(texts[(i + t) % texts.size()]) != expected[(i + t) % texts.size()])
            ++mismatches[t];
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

TEST_F(HfTokenizerTest, BadFilesGiveOneLineErrors) {
  EXPECT_NE(load_error("{\"model\": ").find("not valid JSON"), std::string::npos);
  json root = tiny_tokenizer();
  root["model"]["type"] = "WordPiece";
  EXPECT_NE(load_error(root.dump()).find("model type \"WordPiece\" is not supported"),
            std::string::npos);
  root = tiny_tokenizer();
  root["pre_tokenizer"] = {{"type", "Whitespace"}};
  EXPECT_NE(load_error(root.dump()).find("pre_tokenizer \"Whitespace\" is not supported"),
            std::string::npos);
  root = tiny_tokenizer();
  root["normalizer"] = {{"type", "Lowercase"}};
  EXPECT_NE(load_error(root.dump()).find("normalizer \"Lowercase\" is not supported"),
            std::string::npos);
  root = tiny_tokenizer();
  root["decoder"] = {{"type", "WordPiece"}};
  EXPECT_NE(load_error(root.dump()).find("decoder \"WordPiece\""), std::string::npos);
  root = tiny_tokenizer();
  root["added_tokens"] = json::array();
  EXPECT_NE(load_error(root.dump()).find("no end-of-text token"), std::string::npos);
  root = tiny_tokenizer();
  root["model"]["merges"].push_back("x zz");
  EXPECT_NE(load_error(root.dump()).find("\"zz\", which is not in the vocab"), std::string::npos);
  root = tiny_tokenizer();
  root["model"].erase("vocab");
  EXPECT_NE(load_error(root.dump()).find("no BPE model"), std::string::npos);

  const std::string missing = dir_ + "/missing.json";
  try {
    tokenizer_create("hf:" + missing);
    ADD_FAILURE() << "expected a UserError";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot open " + missing), std::string::npos);
  }
}

TEST(HfTokenizerRegex, TranslatesOnigurumaOnlyWhereItDiffers) {
  // \s is Unicode White_Space: U+0085 yes, U+180E no (PCRE2 10.42's \s says the opposite).
  const HfRegex space(hf_regex_translate("\\s", "test"), false, "test");
  size_t start, end;
  EXPECT_TRUE(space.search("\xC2\x85", 0, &start, &end));
  EXPECT_FALSE(space.search("\xE1\xA0\x8E", 0, &start, &end));
  // Nested classes flatten into a union; \h is a hex digit; Ruby's (?m) is dot-all.
  EXPECT_EQ(hf_regex_translate("[^(x|[.,])]+", "test"), "[^(x|.,)]+");
  const HfRegex hex(hf_regex_translate("\\h+", "test"), false, "test");
  ASSERT_TRUE(hex.search("zz 0fA9 ", 0, &start, &end));
  EXPECT_EQ(std::make_pair(start, end), std::make_pair(size_t{3}, size_t{7}));
  EXPECT_EQ(hf_regex_translate("(?mi:a.b)", "test"), "(?si:a.b)");
  EXPECT_THROW(hf_regex_translate("[a&&b]", "test"), UserError);
  // Case-insensitive contractions match the long s, as Oniguruma's do.
  const HfRegex contraction(hf_regex_translate("(?i:'s)", "test"), false, "test");
  EXPECT_TRUE(contraction.search("x'\xC5\xBF", 0, &start, &end));
}

TEST(HfTokenizerRegex, FindsMatchesAsOnigurumasFindIter) {
  // Empty matches are reported, except one right where the previous match ended.
  const HfRegex as(hf_regex_translate("a*", "test"), false, "test");
  std::vector<std::pair<size_t, size_t>> found;
  hf_regex_find_each(as, "baaab",
                     [&](size_t start, size_t end) { found.emplace_back(start, end); });
  EXPECT_EQ(found, (std::vector<std::pair<size_t, size_t>>{{0, 0}, {1, 4}, {5, 5}}));
}

TEST(HfTokenizerNormalizer, LeavesCharactersNewerThanTheLibrarysTablesAlone) {
  HfNormalizer nfc;
  ASSERT_TRUE(nfc.add("NFC"));
  EXPECT_FALSE(nfc.add("Lowercase"));
  std::string buffer;
  EXPECT_EQ(nfc.apply("e\xCC\x81", buffer), "\xC3\xA9");  // e + U+0301 composes to U+00E9
  // U+1DF6 (a combining mark of Unicode 10) before U+0301: ICU moves U+0301 ahead of it and
  // composes; to the library's Unicode 9 tables U+1DF6 is an inert starter, so nothing moves.
  const std::string newer = "a\xE1\xB7\xB6\xCC\x81";
  EXPECT_EQ(nfc.apply(newer, buffer), newer);
  EXPECT_EQ(nfc.apply("x e\xCC\x81 " + newer + " e\xCC\x81", buffer),
            "x \xC3\xA9 " + newer + " \xC3\xA9");
}

}  // namespace
}  // namespace tessera::data
