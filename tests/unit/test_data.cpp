// data/: tokenizer, token shards, corpus preparation and the global sample order.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/loader.h"
#include "data/prepare.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "launch/commands.h"
#include "runtime/error.h"
#include "test_files.h"

namespace tessera::data {
namespace {
namespace fs = std::filesystem;
using test::fresh_dir;
using test::write_file;
using test::user_error_of;




// Writes documents of the given lengths (token j of document d = (7*d + j) % vocab) and
// returns the whole stream.
std::vector<int32_t> write_corpus(const std::string& dir, const std::vector<size_t>& lengths,
                                  int64_t vocab, uint64_t shard_bytes) {
  std::vector<int32_t> stream;
  ShardWriter writer(dir, vocab, shard_bytes);
  for (size_t d = 0; d < lengths.size(); ++d) {
    std::vector<int32_t> doc(lengths[d]);
    for (size_t j = 0; j < doc.size(); ++j) doc[j] = static_cast<int32_t>((7 * d + j) % vocab);
    writer.append_document(doc.data(), doc.size());
    stream.insert(stream.end(), doc.begin(), doc.end());
  }
  writer.finish();
  return stream;
}

std::vector<int32_t> read_all(const ShardSet& set) {
  std::vector<int32_t> all(set.total_tokens());
  set.read(0, set.total_tokens(), all.data());
  return all;
}

// ------------------------------------------------------------------------------ tokenizer

TEST(DataTokenizer, ByteRoundTrip) {
  const auto tok = tokenizer_create("byte");
  EXPECT_EQ(tok->vocab_size(), 257);
  EXPECT_EQ(tok->eod_id(), 256);
  EXPECT_EQ(tok->name(), "byte");
  const std::string text = "Grüße, Привет, 你好 🎉\n";
  std::vector<int32_t> ids = tok->encode(text);
  ASSERT_EQ(ids.size(), text.size());
  EXPECT_EQ(ids[2], 0xC3);  // first byte of "ü"
  EXPECT_EQ(tok->decode(ids.data(), ids.size()), text);
  ids.push_back(tok->eod_id());  // end-of-document is not text
  EXPECT_EQ(tok->decode(ids.data(), ids.size()), text);
}

TEST(DataTokenizer, UnknownSpecListsKnownOnes) {
  const std::string message = user_error_of([] { tokenizer_create("gpt9"); });
  EXPECT_NE(message.find("gpt9"), std::string::npos) << message;
  EXPECT_NE(message.find("\"byte\""), std::string::npos) << message;
  EXPECT_THROW(tokenizer_create("sentencepiece:/nonexistent.model"), UserError);
}

TEST(DataTokenizer, Utf8RepairReplacesEachInvalidRunOnce) {
  const std::string fffd = "\xEF\xBF\xBD";
  struct Case {
    std::string in, out;
    size_t replaced;
  };
  const Case cases[] = {
      {"plain", "plain", 0},
      {"Grüße 你好 🎉", "Grüße 你好 🎉", 0},
      {fffd, fffd, 0},                              // U+FFFD itself is valid
      {"a\xFFz", "a" + fffd + "z", 1},              // byte never valid in UTF-8
      {"a\xFF\xFE\x80z", "a" + fffd + "z", 1},      // one run, one replacement
      {"\x80x\x80", fffd + "x" + fffd, 2},          // stray continuation bytes
      {"ab\xC3", "ab" + fffd, 1},                   // truncated at the end
      {"\xC3(", fffd + "(", 1},                     // bad continuation
      {"\xF0\x9F\x8Ex", fffd + "x", 1},             // truncated 4-byte sequence
      {"\xC0\xAF", fffd, 1},                        // overlong "/"
      {"\xE0\x80\xAF", fffd, 1},                    // overlong, 3 bytes
      {"\xED\xA0\x80", fffd, 1},                    // surrogate U+D800
      {"\xF4\x90\x80\x80", fffd, 1},                // above U+10FFFF
      {"\xF4\x8F\xBF\xBF", "\xF4\x8F\xBF\xBF", 0},  // U+10FFFF is fine
  };
  std::string out = "stale contents";
  for (const Case& c : cases) {
    EXPECT_EQ(utf8_repair(c.in, out), c.replaced) << testing::PrintToString(c.in);
    EXPECT_EQ(out, c.out) << testing::PrintToString(c.in);
  }
}

// --------------------------------------------------------------------------------- shards

TEST(DataShard, RoundTripAcrossSeveralShards) {
  const std::string dir = fresh_dir("roundtrip");
  // 40 bytes = 20 uint16 tokens per shard; the 45-token document gets a shard of its own.
  const std::vector<size_t> lengths = {5, 12, 1, 45, 3, 19, 20, 7, 8, 9, 2, 30};
  const std::vector<int32_t> stream = write_corpus(dir, lengths, 257, 40);
  const ShardSet set = ShardSet::open(dir);
  EXPECT_GE(set.shard_count(), 6u);
  EXPECT_TRUE(fs::exists(dir + "/shard_00000.tok"));
  for (const auto& entry : fs::directory_iterator(dir))
    EXPECT_EQ(entry.path().extension(), ".tok") << "left behind: " << entry.path();
  EXPECT_EQ(set.vocab_size(), 257);
  EXPECT_EQ(set.total_documents(), static_cast<int64_t>(lengths.size()));
  ASSERT_EQ(set.total_tokens(), static_cast<int64_t>(stream.size()));
  EXPECT_EQ(read_all(set), stream);
  // Every (offset, count), so reads that start, end and cross at each boundary are covered.
  std::vector<int32_t> out(stream.size());
  for (int64_t offset = 0; offset < set.total_tokens(); ++offset)
    for (int64_t count = 0; offset + count <= set.total_tokens(); count += 3) {
      set.read(offset, count, out.data());
      ASSERT_TRUE(std::equal(out.begin(), out.begin() + count, stream.begin() + offset))
          << "offset " << offset << " count " << count;
    }
  // The document indexes give back the document lengths.
  std::vector<size_t> seen;
  for (size_t s = 0; s < set.shard_count(); ++s) {
    const TokenShard& shard = set.shard(s);
    EXPECT_EQ(shard.dtype(), TokenDtype::kUint16);
    EXPECT_TRUE(shard.token_count() * 2 <= 40 || shard.document_count() == 1);
    for (int64_t d = 0; d < shard.document_count(); ++d) {
      const int64_t end =
          d + 1 < shard.document_count() ? shard.document_start(d + 1) : shard.token_count();
      seen.push_back(end - shard.document_start(d));
    }
  }
  EXPECT_EQ(seen, lengths);
}

TEST(DataShard, LargeVocabularyUsesUint32) {
  const std::string dir = fresh_dir("uint32");
  ShardWriter writer(dir, 100000, kDefaultShardBytes);
  const std::vector<int32_t> doc = {0, 65535, 65536, 99999, 12345};
  writer.append_document(doc.data(), doc.size());
  writer.finish();
  const ShardSet set = ShardSet::open(dir);
  EXPECT_EQ(set.shard(0).dtype(), TokenDtype::kUint32);
  EXPECT_EQ(read_all(set), doc);
}

TEST(DataShard, WriterRefusesDirectoryThatHoldsShards) {
  const std::string dir = fresh_dir("refuse");
  write_corpus(dir, {4}, 257, 1024);
  const std::string message = user_error_of([&] { ShardWriter writer(dir, 257); });
  EXPECT_NE(message.find(dir), std::string::npos) << message;
}

TEST(DataShard, TruncatedShardIsRejectedNamingTheFile) {
  const std::string dir = fresh_dir("truncated");
  write_corpus(dir, {10, 10, 10}, 257, 1024);
  const std::string path = dir + "/shard_00000.tok";
  EXPECT_NO_THROW(TokenShard::open(path));
  for (const uintmax_t size : {fs::file_size(path) - 3, uintmax_t{80}, uintmax_t{30}}) {
    fs::resize_file(path, size);
    const std::string message = user_error_of([&] { TokenShard::open(path); });
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find("truncated"), std::string::npos) << message;
    EXPECT_THROW(ShardSet::open(dir), UserError);
  }
}

TEST(DataShard, ForeignFileAndOtherVersionAreRejectedNamingTheFile) {
  const std::string dir = fresh_dir("foreign");
  const std::string path = dir + "/shard_00000.tok";
  write_file(path, "#!/bin/sh\necho 'a shell script is not a token shard, whatever its name'\n");
  std::string message = user_error_of([&] { ShardSet::open(dir); });
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("not a tessera token shard"), std::string::npos) << message;

  fs::remove(path);
  write_corpus(dir, {10}, 257, 1024);
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(8);
  f.put(2);  // format version 2
  f.close();
  message = user_error_of([&] { TokenShard::open(path); });
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("version 2"), std::string::npos) << message;
}

TEST(DataShard, MissingEmptyOrGappedDirectoryIsRejected) {
  const std::string dir = fresh_dir("empty");
  std::string message = user_error_of([&] { ShardSet::open(dir + "/nope"); });
  EXPECT_NE(message.find(dir + "/nope"), std::string::npos) << message;
  message = user_error_of([&] { ShardSet::open(dir); });
  EXPECT_NE(message.find(dir), std::string::npos) << message;
  write_corpus(dir, {10, 10, 10}, 257, 20);  // three shards
  fs::remove(dir + "/shard_00001.tok");
  message = user_error_of([&] { ShardSet::open(dir); });
  EXPECT_NE(message.find("shard_00001.tok"), std::string::npos) << message;
}

// --------------------------------------------------------------------------------- loader

TEST(DataLoader, PermutationIsABijectionForManySizes) {
  for (const uint64_t n : {1, 2, 3, 5, 64, 1000, 4097})
    for (const uint64_t seed : {0ull, 12345ull})
      for (const uint64_t epoch : {0ull, 7ull}) {
        std::vector<int> hits(n, 0);
        for (uint64_t i = 0; i < n; ++i) {
          const uint64_t j = permute_index(i, n, seed, epoch);
          ASSERT_LT(j, n);
          ++hits[j];
        }
        EXPECT_EQ(std::count(hits.begin(), hits.end(), 1), static_cast<ptrdiff_t>(n))
            << "n " << n << " seed " << seed << " epoch " << epoch;
      }
}

TEST(DataLoader, PermutationDependsOnSeedAndEpoch) {
  const uint64_t n = 1000;
  const auto order = [&](uint64_t seed, uint64_t epoch) {
    std::vector<uint64_t> v(n);
    for (uint64_t i = 0; i < n; ++i) v[i] = permute_index(i, n, seed, epoch);
    return v;
  };
  const std::vector<uint64_t> base = order(1, 0);
  EXPECT_NE(base, order(2, 0));
  EXPECT_NE(base, order(1, 1));
  EXPECT_EQ(base, order(1, 0));
  int fixed_points = 0;  // a shuffle has about one; the identity has n
  for (uint64_t i = 0; i < n; ++i) fixed_points += base[i] == i;
  EXPECT_LT(fixed_points, 10);
}

class DataLoaderCorpus : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fresh_dir("loader");
    stream_ = write_corpus(dir_, {300, 250, 1, 449}, 257, 512);  // 1000 tokens, 3+ shards
    set_ = std::make_unique<ShardSet>(ShardSet::open(dir_));
  }
  static constexpr int64_t kSeqLen = 16;
  std::string dir_;
  std::vector<int32_t> stream_;
  std::unique_ptr<ShardSet> set_;
};

TEST_F(DataLoaderCorpus, SamplesAreShiftedWindowsAndEachEpochVisitsAllOnce) {
  const Loader loader(*set_, kSeqLen, 42);
  ASSERT_EQ(loader.num_windows(), (1000 - 1) / kSeqLen);
  const int64_t n = loader.num_windows();
  std::vector<int32_t> in(kSeqLen), tg(kSeqLen);
  std::vector<std::vector<int64_t>> orders;
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    std::set<int64_t> windows;
    orders.emplace_back();
    for (int64_t k = epoch * n; k < (epoch + 1) * n; ++k) {
      EXPECT_EQ(loader.epoch_of(k), epoch);
      const int64_t w = loader.window_of(k);
      windows.insert(w);
      orders.back().push_back(w);
      loader.sample(k, in.data(), tg.data());
      const auto start = stream_.begin() + w * kSeqLen;
      ASSERT_TRUE(std::equal(in.begin(), in.end(), start)) << "k " << k;
      ASSERT_TRUE(std::equal(tg.begin(), tg.end(), start + 1)) << "k " << k;
    }
    EXPECT_EQ(windows.size(), static_cast<size_t>(n));
    EXPECT_EQ(*windows.rbegin(), n - 1);
  }
  EXPECT_NE(orders[0], orders[1]);  // each epoch has its own order
  EXPECT_NE(orders[1], orders[2]);
}

TEST_F(DataLoaderCorpus, BatchSlicesEqualTheFullBatch) {
  const Loader loader(*set_, kSeqLen, 7);
  const int64_t global_batch = 8;
  for (const int64_t step : {0, 3, 20}) {
    std::vector<int32_t> in(global_batch * kSeqLen), tg(global_batch * kSeqLen);
    loader.batch(step, global_batch, 0, global_batch, in.data(), tg.data());
    std::vector<int32_t> row_in(kSeqLen), row_tg(kSeqLen);
    for (int64_t i = 0; i < global_batch; ++i) {
      loader.sample(step * global_batch + i, row_in.data(), row_tg.data());
      ASSERT_TRUE(std::equal(row_in.begin(), row_in.end(), in.begin() + i * kSeqLen));
      ASSERT_TRUE(std::equal(row_tg.begin(), row_tg.end(), tg.begin() + i * kSeqLen));
    }
    // Any split into rank slices, even or not, reads exactly the same rows.
    for (const auto& [first, count] :
         std::vector<std::pair<int64_t, int64_t>>{{0, 4}, {4, 4}, {0, 2}, {6, 2}, {3, 5}, {7, 1}}) {
      std::vector<int32_t> part_in(count * kSeqLen), part_tg(count * kSeqLen);
      loader.batch(step, global_batch, first, count, part_in.data(), part_tg.data());
      EXPECT_TRUE(std::equal(part_in.begin(), part_in.end(), in.begin() + first * kSeqLen));
      EXPECT_TRUE(std::equal(part_tg.begin(), part_tg.end(), tg.begin() + first * kSeqLen));
    }
  }
}

TEST_F(DataLoaderCorpus, SameSeedAndIndexGiveTheSameSample) {
  const ShardSet reopened = ShardSet::open(dir_);
  const Loader a(*set_, kSeqLen, 42), b(reopened, kSeqLen, 42), other(*set_, kSeqLen, 43);
  std::vector<int32_t> in_a(kSeqLen), tg_a(kSeqLen), in_b(kSeqLen), tg_b(kSeqLen);
  int differing = 0;
  for (const int64_t k :
       {int64_t{0}, int64_t{1}, int64_t{61}, int64_t{62}, int64_t{1000}, int64_t{1} << 40}) {
    a.sample(k, in_a.data(), tg_a.data());
    a.sample(k + 1, in_b.data(), tg_b.data());  // an interleaved call changes nothing
    b.sample(k, in_b.data(), tg_b.data());
    EXPECT_EQ(in_a, in_b) << "k " << k;
    EXPECT_EQ(tg_a, tg_b) << "k " << k;
    differing += a.window_of(k) != other.window_of(k);
  }
  EXPECT_GT(differing, 0);
}

TEST_F(DataLoaderCorpus, CorpusShorterThanOneWindowIsRejected) {
  EXPECT_EQ(Loader(*set_, 999, 1).num_windows(), 1);  // exactly seq_len + 1 tokens
  const std::string message = user_error_of([&] { Loader loader(*set_, 1000, 1); });
  EXPECT_NE(message.find(dir_), std::string::npos) << message;
  EXPECT_NE(message.find("1000 tokens"), std::string::npos) << message;
  EXPECT_THROW(Loader(*set_, 0, 1), UserError);
}

// -------------------------------------------------------------------------------- prepare

TEST(DataPrepare, FortuneAndParagraphFilesBecomeDocuments) {
  const std::string root = fresh_dir("prepare");
  fs::create_directories(root + "/in/sub");
  // Fortune format: a leading "%" (no document before it), then a document, an empty one and
  // one with an invalid byte.
  write_file(root + "/in/a.txt", "%\nfirst\n%\n%\n  second \xFF doc\n\nline 3\n\n%\n");
  // Paragraphs, with a byte-order mark, CRLF endings and a run of blank lines.
  write_file(root + "/in/sub/b.txt", "\xEF\xBB\xBFpara one\r\nstill one\r\n\r\n \r\npara two\n");
  write_file(root + "/in/.hidden", "not an input\n");
  PrepareOptions options;
  options.inputs = {root + "/in"};
  options.out = root + "/out";
  options.shard_bytes = 16;
  const PrepareStats stats = prepare(options);

  const std::vector<std::string> docs = {"first", "  second \xEF\xBF\xBD doc\n\nline 3",
                                         "para one\nstill one", "para two"};
  EXPECT_EQ(stats.total.documents, 4u);
  EXPECT_EQ(stats.total.empty_skipped, 1u);
  EXPECT_EQ(stats.total.invalid_utf8_repaired, 1u);
  size_t bytes = 0;
  for (const std::string& d : docs) bytes += d.size();
  EXPECT_EQ(stats.total.bytes, bytes);
  EXPECT_EQ(stats.total.tokens, bytes + docs.size());
  ASSERT_EQ(stats.files.size(), 2u);
  EXPECT_EQ(stats.files[0].counts.documents, 2u);
  EXPECT_EQ(stats.files[1].counts.documents, 2u);
  EXPECT_EQ(stats.files[1].counts.empty_skipped, 0u);

  const ShardSet set = ShardSet::open(options.out);
  EXPECT_EQ(set.shard_count(), stats.shards);
  EXPECT_EQ(set.total_documents(), 4);
  const auto tok = tokenizer_create("byte");
  std::vector<int32_t> expected;
  for (const std::string& d : docs) {
    const std::vector<int32_t> ids = tok->encode(d);
    expected.insert(expected.end(), ids.begin(), ids.end());
    expected.push_back(tok->eod_id());
  }
  EXPECT_EQ(read_all(set), expected);

  std::ifstream json_file(options.out + "/stats.json");
  const nlohmann::json json = nlohmann::json::parse(json_file);
  EXPECT_EQ(json["invalid_utf8_repaired"], 1) << json;
  EXPECT_EQ(json["files"][0]["documents"], 2) << json;
  EXPECT_TRUE(json["files"][0]["path"].get<std::string>().ends_with("a.txt")) << json;
  EXPECT_EQ(json["languages"]["und"]["documents"], 4) << json;
  EXPECT_EQ(json["tokenizer"], "byte");
}

TEST(DataPrepare, MissingInputIsNamedAndNothingIsWritten) {
  const std::string root = fresh_dir("prepare_missing");
  PrepareOptions options;
  options.inputs = {root + "/no-such-file.txt"};
  options.out = root + "/out";
  const std::string message = user_error_of([&] { prepare(options); });
  EXPECT_NE(message.find(root + "/no-such-file.txt"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(options.out));
}

TEST(DataPrepare, CommandLine) {
  const std::string root = fresh_dir("prepare_cli");
  write_file(root + "/a.txt", "one\n%\ntwo\n%\n");
  write_file(root + "/b.txt", "three\n");
  const auto run = [](std::vector<std::string> args) {
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    return cmd_prepare(static_cast<int>(argv.size()), argv.data());
  };
  std::string message = user_error_of([&] { run({"prepare", "--input", root + "/a.txt"}); });
  EXPECT_NE(message.find("missing --out"), std::string::npos) << message;
  EXPECT_NE(message.find("--help"), std::string::npos) << message;
  message = user_error_of([&] { run({"prepare", "--inptu", "x", "--out", root}); });
  EXPECT_NE(message.find("--inptu"), std::string::npos) << message;
  EXPECT_THROW(run({"prepare", "--input", "a", "--out", root, "--shard-mb", "-1"}), UserError);
  EXPECT_THROW(run({"prepare", "--input", "a", "--out", root, "--tokenizer"}), UserError);
  testing::internal::CaptureStdout();
  EXPECT_EQ(run({"prepare", "--tokenizer=byte", "--input", root + "/a.txt", root + "/b.txt",
                 "--out", root + "/out", "--shard-mb", "1"}),
            0);
  EXPECT_NE(testing::internal::GetCapturedStdout().find("3 documents"), std::string::npos);
  EXPECT_EQ(ShardSet::open(root + "/out").total_documents(), 3);
}

}  // namespace
}  // namespace tessera::data
