// data/contamination: word normalisation, the n-gram index and the scan of token shards.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "data/contamination.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "runtime/error.h"
#include "test_files.h"

namespace tessera::data {
namespace {
namespace fs = std::filesystem;
using test::fresh_dir;
using test::write_file;
using test::user_error_of;

using Words = std::vector<std::string>;




// `count` words no evaluation text uses ("q17x", ...), deterministic in `seed`.
std::string filler(int count, uint32_t seed) {
  std::string text;
  for (int i = 0; i < count; ++i) {
    seed = seed * 1664525u + 1013904223u;
    text += (i ? " q" : "q") + std::to_string(seed >> 20) + "x";
  }
  return text;
}

// A prepared directory as `tessera prepare --tokenizer byte` leaves it: shards and stats.json.
void write_training(const std::string& dir, const std::vector<std::string>& docs,
                    uint64_t shard_bytes = kDefaultShardBytes) {
  const std::unique_ptr<Tokenizer> byte = tokenizer_create("byte");
  ShardWriter writer(dir, byte->vocab_size(), shard_bytes);
  for (const std::string& doc : docs) {
    std::vector<int32_t> ids = byte->encode(doc);
    ids.push_back(byte->eod_id());
    writer.append_document(ids.data(), ids.size());
  }
  writer.finish();
  write_file(dir + "/stats.json", "{\"tokenizer\": \"byte\", \"vocab_size\": 257}\n");
}

NgramIndex index_of(int n, const std::vector<std::string>& docs) {
  NgramIndex index(n);
  for (const std::string& doc : docs) index.add(doc);
  index.finish();
  return index;
}

TEST(ContaminationWords, CaseAndPunctuation) {
  EXPECT_EQ(normalized_words("Don't stop\u2014NOW!"), (Words{"don", "t", "stop", "now"}));
  EXPECT_EQ(normalized_words("  Hello,WORLD... (x_2 = 3.14)\n"),
            (Words{"hello", "world", "x", "2", "3", "14"}));
  EXPECT_EQ(normalized_words("Ärger ÜBER Straße, ÉCOLE"),
            (Words{"ärger", "über", "straße", "école"}));
  EXPECT_EQ(normalized_words(""), Words{});
  EXPECT_EQ(normalized_words("?!, -- ..."), Words{});
}

TEST(ContaminationWords, GreekAndCyrillic) {
  EXPECT_EQ(normalized_words("Привет, МИР! Ёж"), (Words{"привет", "мир", "ёж"}));
  // Final sigma folds to sigma, so upper- and lowercase Greek give the same word.
  EXPECT_EQ(normalized_words("ΟΔΟΣ οδος"), (Words{"οδοσ", "οδοσ"}));
  EXPECT_EQ(normalized_words("Ԁ Ꙁ Ա"), (Words{"ԁ", "ꙁ", "ա"}));  // Cyrillic Supplement, Armenian
}

TEST(ContaminationWords, CjkIsOneWordPerCharacter) {
  EXPECT_EQ(normalized_words("中文abc，日本語です。"),
            (Words{"中", "文", "abc", "日", "本", "語", "で", "す"}));
  EXPECT_EQ(normalized_words("สวัสดี"), (Words{"ส", "ว", "ั", "ส", "ด", "ี"}));
  // Korean is written with spaces: its words stay whole.
  EXPECT_EQ(normalized_words("안녕하세요 세계"), (Words{"안녕하세요", "세계"}));
  // Fullwidth Latin and digits are ASCII.
  EXPECT_EQ(normalized_words("ＡＢＣ１２！"), (Words{"abc12"}));
}

TEST(ContaminationWords, FormatCharactersInvalidUtf8AndSpans) {
  EXPECT_EQ(normalized_words("inter\u00ADnational"), (Words{"international"}));
  EXPECT_EQ(normalized_words(std::string("ab\xFF") + "cd\xE2\x82"), (Words{"ab", "cd"}));
  EXPECT_EQ(normalized_words("cafe\u0301"), (Words{"cafe\u0301"}));  // no NFKC
  const std::string text = "  Hi, ÉTÉ!";
  const std::vector<std::pair<size_t, size_t>> spans = word_spans(text);
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(text.substr(spans[0].first, spans[0].second - spans[0].first), "Hi");
  EXPECT_EQ(text.substr(spans[1].first, spans[1].second - spans[1].first), "ÉTÉ");
  std::vector<uint64_t> a, b;
  word_hashes("Été été", a);
  word_hashes("ÉTÉ", b);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0], a[1]);
  EXPECT_EQ(a[0], b[0]);
}

TEST(ContaminationIndex, HitsAndMisses) {
  const NgramIndex index = index_of(3, {"The quick brown fox jumps.", "lorem ipsum dolor sit"});
  EXPECT_EQ(index.document_count(), 2u);
  EXPECT_EQ(index.document_ngrams(0), 3u);
  EXPECT_TRUE(index.matches("Look: a QUICK, brown fox!"));
  EXPECT_TRUE(index.matches("ipsum DOLOR sit amet"));
  EXPECT_FALSE(index.matches("quick brown dog"));
  EXPECT_FALSE(index.matches("brown quick fox"));
  EXPECT_FALSE(index.matches(""));
  EXPECT_EQ(index.count_matches("the quick brown fox jumps"), 3u);
  EXPECT_EQ(index.count_matches("the quick brown and lorem ipsum dolor sit"), 3u);
  EXPECT_EQ(index.count_matches("nothing here at all"), 0u);
}

TEST(ContaminationIndex, ShortDocumentMatchesItsWholeWordSequence) {
  // 2 and 3 words with n = 5: each is one n-gram, its whole sequence.
  const NgramIndex index = index_of(5, {"Paris, France", "to be, or", "", "!!!"});
  EXPECT_EQ(index.document_ngrams(0), 1u);
  EXPECT_EQ(index.document_ngrams(2), 0u);  // no words, no n-grams
  EXPECT_EQ(index.document_ngrams(3), 0u);
  EXPECT_TRUE(index.matches("I love paris france in spring and autumn"));
  EXPECT_TRUE(index.matches("paris france"));  // a text shorter than n matches a short doc
  EXPECT_TRUE(index.matches("Whether TO BE OR not"));
  EXPECT_FALSE(index.matches("paris is in france"));
  EXPECT_FALSE(index.matches("to be"));
  // A short text never matches a long document's n-grams.
  const NgramIndex long_index = index_of(5, {"one two three four five six"});
  EXPECT_FALSE(long_index.matches("two three four five"));
  EXPECT_TRUE(long_index.matches("two three four five six"));
}

TEST(ContaminationIndex, FromFilesAndErrors) {
  const std::string dir = fresh_dir("from_files");
  write_file(dir + "/eval.txt", "alpha beta gamma\n%\ndelta epsilon zeta eta\n%\n");
  const NgramIndex index = NgramIndex::from_files({dir + "/eval.txt"}, 3, {}, "prepare");
  EXPECT_EQ(index.document_count(), 2u);
  EXPECT_TRUE(index.matches("x epsilon zeta eta y"));
  EXPECT_FALSE(index.matches("alpha beta delta"));
  const std::string missing =
      user_error_of([&] { NgramIndex::from_files({dir + "/missing.txt"}, 3, {}, "prepare"); });
  EXPECT_NE(missing.find("prepare: input"), std::string::npos) << missing;
  EXPECT_NE(user_error_of([] { NgramIndex index(0); }).find("at least 1"), std::string::npos);
}

// The check on token shards: a 13-gram planted (recased, repunctuated) in training documents
// is found; 12 shared words are not.
TEST(ContaminationCheck, PlantedThirteenGramFoundNearMissNot) {
  const std::string dir = fresh_dir("planted");
  const std::string planted =
      "The committee agreed that the annual budget should be reviewed every spring by two "
      "independent auditors";
  const std::string near_miss =
      "Rivers carry sediment from the mountains to the sea where it slowly settles into layers "
      "of clay";
  const std::string clean =
      "Nothing in this sentence appears anywhere in the training corpus at all today";
  write_file(dir + "/eval.txt", planted + "\n%\n" + near_miss + "\n%\n" + clean + "\n");
  // Words 3..15 of `planted` (13 words), and words 0..11 of `near_miss` (12 words).
  const std::string copy13 =
      "THAT the Annual budget, should be reviewed every spring; by two INDEPENDENT auditors";
  const std::string copy12 = "rivers carry sediment from the mountains to the sea where it slowly";
  std::vector<std::string> training;
  for (int d = 0; d < 40; ++d) {
    std::string doc = filler(30, d);
    if (d == 7 || d == 31) doc += " " + copy13 + " " + filler(5, 100 + d);
    if (d == 12) doc += " " + copy12 + " " + filler(5, 200);
    training.push_back(doc);
  }
  write_training(dir + "/train", training, /*shard_bytes=*/4000);  // several shards

  for (const int threads : {1, 3}) {
    ContaminationOptions options;
    options.threads = threads;
    const ContaminationReport report =
        contamination_check(dir + "/train", {dir + "/eval.txt"}, options);
    EXPECT_EQ(report.n, 13);
    EXPECT_EQ(report.training_documents, 40u);
    ASSERT_EQ(report.files.size(), 1u);
    const ContaminationFileReport& file = report.files[0];
    EXPECT_EQ(file.documents, 3u);
    EXPECT_EQ(file.contaminated, 1u);
    EXPECT_EQ(file.short_documents, 0u);
    ASSERT_EQ(file.examples.size(), 1u);
    const ContaminationExample& e = file.examples[0];
    EXPECT_EQ(e.line, 1u);
    EXPECT_EQ(e.offset, 0u);
    EXPECT_EQ(e.ngrams, 4u);  // 16 words
    EXPECT_EQ(e.shared_ngrams, 1u);
    EXPECT_EQ(e.training_documents, 2u);
    EXPECT_EQ(e.shared_text,
              "that the annual budget should be reviewed every spring by two independent auditors");
    // The first training document holding it: document 7 of the stream.
    const ShardSet shards = ShardSet::open(dir + "/train");
    ASSERT_GT(shards.shard_count(), 1u);
    int64_t index = 7;
    size_t s = 0;
    while (index >= shards.shard(s).document_count()) index -= shards.shard(s++).document_count();
    EXPECT_EQ(e.training_shard, shards.shard(s).path());
    EXPECT_EQ(e.training_document, index);
  }

  // With n = 12 the near miss is found too, ranked below the planted one (1 of its 6 n-grams
  // shared, against 2 of 5).
  ContaminationOptions options;
  options.n = 12;
  const ContaminationReport report =
      contamination_check(dir + "/train", {dir + "/eval.txt"}, options);
  EXPECT_EQ(report.files[0].contaminated, 2u);
  ASSERT_EQ(report.files[0].examples.size(), 2u);
  EXPECT_EQ(report.files[0].examples[0].line, 1u);  // 2 of 5 shared
  EXPECT_EQ(report.files[0].examples[0].shared_ngrams, 2u);
  EXPECT_EQ(report.files[0].examples[1].line, 3u);  // 1 of 5 shared
  EXPECT_EQ(report.files[0].examples[1].shared_ngrams, 1u);
}

TEST(ContaminationCheck, UserErrors) {
  const std::string dir = fresh_dir("errors");
  write_file(dir + "/eval.txt", "some words\n");
  write_training(dir + "/train", {"some words and more"});
  ContaminationOptions options;
  const auto error_of = [&](const std::string& train, const std::string& eval) {
    return user_error_of(
        [&] { contamination_check(dir + "/" + train, {dir + "/" + eval}, options); });
  };
  EXPECT_NE(error_of("none", "eval.txt").find("none does not exist"), std::string::npos);
  EXPECT_NE(error_of("train", "no.txt").find("no.txt"), std::string::npos);
  fs::create_directories(dir + "/bare");
  EXPECT_NE(error_of("bare", "eval.txt").find("stats.json is missing"), std::string::npos);
  write_file(dir + "/train/stats.json", "{\"vocab_size\": 257}");
  EXPECT_NE(error_of("train", "eval.txt").find("names no tokenizer"), std::string::npos);
  write_file(dir + "/train/stats.json", "{\"tokenizer\": \"byte\"}");
  options.n = 0;
  EXPECT_NE(error_of("train", "eval.txt").find("at least 1"), std::string::npos);
}

}  // namespace
}  // namespace tessera::data
