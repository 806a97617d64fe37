// data/sentencepiece_tokenizer: training a tiny model on multilingual text, loading it,
// round trips, byte fallback, concurrent encoding, and the one-line errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "data/sentencepiece_tokenizer.h"
#include "data/tokenizer.h"
#include "runtime/error.h"
#include "test_files.h"

namespace tessera::data {
namespace {
namespace fs = std::filesystem;
using test::fresh_dir;
using test::write_file;
using test::read_file;
using test::user_error_of;





// Lines in four scripts plus emoji, combined so the trainer sees a few thousand sentences
// with repeated words (enough for a few hundred pieces), in the fortune format.
std::vector<std::string> multilingual_lines() {
  const std::vector<std::string> subjects = {
      "The quick brown fox", "A lazy dog", "Мой дядя",      "Старый кот",
      "我们的老师",          "这只小猫",   "Der alte Mann", "Ein kleines Kind",
      "The weather 🌧️", "Счастье 😊"};
  const std::vector<std::string> verbs = {"jumps over", "reads", "читает", "любит",
                                          "喜欢",       "看见",  "sieht",  "isst"};
  const std::vector<std::string> objects = {"the fence.", "a long book.", "книгу.",     "молоко.",
                                            "中文书。",   "大山和河流。", "den Apfel.", "🍎 and 🍐!"};
  std::vector<std::string> lines;
  for (const std::string& s : subjects)
    for (const std::string& v : verbs)
      for (const std::string& o : objects) lines.push_back(s + " " + v + " " + o);
  return lines;
}

std::string fortune_text(const std::vector<std::string>& lines) {
  std::string text;
  for (size_t i = 0; i < lines.size(); ++i) {
    text += lines[i] + "\n";
    if (i % 3 == 2) text += "%\n";  // separators: never training sentences
  }
  return text;
}

class SentencePieceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(fresh_dir("model"));
    // Plus one line too long to train on.
    write_file(*dir_ + "/corpus.txt",
               fortune_text(multilingual_lines()) + std::string(5000, 'x') + "\n%\n");
    SentencePieceTrainOptions options;
    options.inputs = {*dir_ + "/corpus.txt"};
    options.out = *dir_ + "/tiny";
    options.type = SentencePieceModelType::unigram;
    options.vocab_size = 350;
    options.threads = 1;
    stats_ = new SentencePieceTrainStats(sentencepiece_train(options));
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
    delete stats_;
  }
  static std::string model_path() { return *dir_ + "/tiny.model"; }

  static std::string* dir_;
  static SentencePieceTrainStats* stats_;
};
std::string* SentencePieceTest::dir_ = nullptr;
SentencePieceTrainStats* SentencePieceTest::stats_ = nullptr;

TEST_F(SentencePieceTest, TrainingWritesModelAndVocab) {
  const size_t lines = multilingual_lines().size();
  EXPECT_EQ(stats_->sentences_read, lines);  // "%" separators are not sentences
  EXPECT_EQ(stats_->sentences_used, lines);
  EXPECT_EQ(stats_->sentences_too_long, 1u);
  EXPECT_EQ(stats_->vocab_size, 350);
  EXPECT_EQ(stats_->model_path, model_path());
  std::istringstream vocab(read_file(*dir_ + "/tiny.vocab"));
  std::vector<std::string> pieces;
  for (std::string line; std::getline(vocab, line);)
    pieces.push_back(line.substr(0, line.find('\t')));
  ASSERT_EQ(pieces.size(), 350u);
  EXPECT_EQ(pieces[0], "<unk>");
  EXPECT_EQ(pieces[1], "<s>");
  EXPECT_EQ(pieces[2], "</s>");
  EXPECT_EQ(pieces[3], "<0x00>");
  EXPECT_EQ(pieces[3 + 0xFF], "<0xFF>");
  EXPECT_FALSE(fs::exists(model_path() + ".tmp"));
}

TEST_F(SentencePieceTest, LoadsThroughTheSpec) {
  const auto tokenizer = tokenizer_create("sentencepiece:" + model_path());
  EXPECT_EQ(tokenizer->name(), "sentencepiece:" + model_path());
  EXPECT_EQ(tokenizer->vocab_size(), 350);
  EXPECT_EQ(tokenizer->eod_id(), 2);
}

TEST_F(SentencePieceTest, RoundTripsEveryScriptAndWhitespace) {
  const auto tokenizer = sentencepiece_tokenizer_load(model_path());
  std::vector<std::string> texts = multilingual_lines();
  // No normalization: runs of spaces, tabs, leading and trailing blanks and full-width
  // forms come back as they were.
  texts.push_back("  indented\tand  spaced  ");
  texts.push_back("ＡＢＣ　全角");
  texts.push_back("");
  for (const std::string& text : texts) {
    const std::vector<int32_t> ids = tokenizer->encode(text);
    for (const int32_t id : ids) {
      EXPECT_GE(id, 0);
      EXPECT_LT(id, 350);
      EXPECT_NE(id, tokenizer->eod_id());
    }
    EXPECT_EQ(tokenizer->decode(ids.data(), ids.size()), text);
  }
  // Characters of the training text are pieces of their own, not bytes.
  const std::string teacher = "我们的老师";
  EXPECT_LE(tokenizer->encode(teacher).size(), teacher.size() / 3 + 1);
}

TEST_F(SentencePieceTest, EndOfDocumentDecodesToNothing) {
  const auto tokenizer = sentencepiece_tokenizer_load(model_path());
  std::vector<int32_t> ids = tokenizer->encode("Мой дядя читает");
  const std::string text = tokenizer->decode(ids.data(), ids.size());
  ids.push_back(tokenizer->eod_id());
  EXPECT_EQ(tokenizer->decode(ids.data(), ids.size()), text);
}

TEST_F(SentencePieceTest, RareCharactersFallBackToBytes) {
  const auto tokenizer = sentencepiece_tokenizer_load(model_path());
  // U+9F98 never occurs in the training text: it is spelled with its three UTF-8 bytes,
  // which are ids 3 + byte (the byte pieces follow <unk>, <s>, </s>).
  const std::string rare = "\xE9\xBE\x98";
  std::vector<int32_t> ids = tokenizer->encode(rare);
  ASSERT_GE(ids.size(), 3u);
  const std::vector<int32_t> tail(ids.end() - 3, ids.end());
  EXPECT_EQ(tail, (std::vector<int32_t>{3 + 0xE9, 3 + 0xBE, 3 + 0x98}));
  EXPECT_EQ(tokenizer->decode(ids.data(), ids.size()), rare);
  for (const int32_t id : ids) EXPECT_NE(id, 0) << "no <unk> with byte fallback";

  const std::string mixed = "我们的老师 \xE9\xBE\x98 🦜 reads";
  ids = tokenizer->encode(mixed);
  EXPECT_EQ(tokenizer->decode(ids.data(), ids.size()), mixed);
}

TEST_F(SentencePieceTest, InvalidUtf8DoesNotFail) {
  const auto tokenizer = sentencepiece_tokenizer_load(model_path());
  const std::string bad = std::string("ok \xFF\xC0 then \xE9\xBE") + " end";
  const std::vector<int32_t> ids = tokenizer->encode(bad);
  EXPECT_FALSE(ids.empty());
  std::string repaired;
  utf8_repair(tokenizer->decode(ids.data(), ids.size()), repaired);
  EXPECT_NE(repaired.find("end"), std::string::npos);
}

TEST_F(SentencePieceTest, ConcurrentEncodeMatchesSerial) {
  const auto tokenizer = sentencepiece_tokenizer_load(model_path());
  const std::vector<std::string> texts = multilingual_lines();
  std::vector<std::vector<int32_t>> serial;
  for (const std::string& text : texts) serial.push_back(tokenizer->encode(text));
  constexpr int kThreads = 4;
  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int round = 0; round < 5; ++round)
        for (size_t i = 0; i < texts.size(); ++i)
          if (tokenizer->encode(texts[(i + t) % texts.size()]) != serial[(i + t) % texts.size()])
            ++mismatches[t];
    });
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

TEST_F(SentencePieceTest, BpeTrainsAndRoundTrips) {
  SentencePieceTrainOptions options;
  options.inputs = {*dir_ + "/corpus.txt"};
  options.out = *dir_ + "/bpe";
  options.type = SentencePieceModelType::bpe;
  options.vocab_size = 350;
  options.threads = 1;
  sentencepiece_train(options);
  const auto tokenizer = sentencepiece_tokenizer_load(*dir_ + "/bpe.model");
  EXPECT_EQ(tokenizer->vocab_size(), 350);
  EXPECT_EQ(tokenizer->eod_id(), 2);
  for (const std::string& text :
       {std::string("Der alte Mann isst 🍎 and 🍐!"), std::string("这只小猫喜欢\xE9\xBE\x98")}) {
    const std::vector<int32_t> ids = tokenizer->encode(text);
    EXPECT_EQ(tokenizer->decode(ids.data(), ids.size()), text);
  }
}

TEST_F(SentencePieceTest, TrainingIsReproducible) {
  SentencePieceTrainOptions options;
  options.inputs = {*dir_ + "/corpus.txt"};
  options.out = *dir_ + "/again";
  options.vocab_size = 350;
  options.threads = 1;
  sentencepiece_train(options);
  EXPECT_EQ(read_file(*dir_ + "/again.model"), read_file(model_path()));
}

TEST_F(SentencePieceTest, MissingOrCorruptModelIsOneLineError) {
  const std::string missing = *dir_ + "/missing.model";
  std::string what = user_error_of([&] { sentencepiece_tokenizer_load(missing); });
  EXPECT_NE(what.find(missing), std::string::npos) << what;

  const std::string model = read_file(model_path());
  const std::vector<std::pair<std::string, std::string>> corrupt = {
      {"empty.model", ""},
      {"truncated.model", model.substr(0, model.size() / 2)},
      {"text.model", "this is not a model\n"},
      {"garbage.model", std::string(64, '\xFF')}};
  for (const auto& [name, content] : corrupt) {
    const std::string path = *dir_ + "/" + name;
    write_file(path, content);
    what = user_error_of([&] { tokenizer_create("sentencepiece:" + path); });
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
  what = user_error_of([&] { sentencepiece_tokenizer_load(*dir_); });
  EXPECT_NE(what.find("directory"), std::string::npos) << what;
}

TEST_F(SentencePieceTest, TrainingErrorsAreOneLine) {
  SentencePieceTrainOptions options;
  options.out = *dir_ + "/bad";
  options.vocab_size = 350;
  options.threads = 1;
  options.inputs = {*dir_ + "/no_such_input.txt"};
  std::string what = user_error_of([&] { sentencepiece_train(options); });
  EXPECT_NE(what.find("no_such_input.txt"), std::string::npos) << what;

  write_file(*dir_ + "/separators.txt", "%\n%\n\n%\n");
  options.inputs = {*dir_ + "/separators.txt"};
  what = user_error_of([&] { sentencepiece_train(options); });
  EXPECT_NE(what.find("no text"), std::string::npos) << what;

  // Far more pieces than the text has: SentencePiece's own refusal, as a UserError.
  options.inputs = {*dir_ + "/corpus.txt"};
  options.vocab_size = 50000;
  what = user_error_of([&] { sentencepiece_train(options); });
  EXPECT_NE(what.find("ocabulary size"), std::string::npos) << what;
  EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  EXPECT_FALSE(fs::exists(*dir_ + "/bad.model"));
}

}  // namespace
}  // namespace tessera::data
