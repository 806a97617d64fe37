// data/documents + data/prepare: formats, compression, byte ranges, parallel units,
// deduplication and per-language statistics.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/documents.h"
#include "data/prepare.h"
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



void write_gzip(const std::string& path, const std::string& content, size_t keep_bytes = SIZE_MAX) {
  const std::string temp = path + ".full";
  gzFile f = gzopen(temp.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, content.data(), static_cast<unsigned>(content.size())), static_cast<int>(content.size()));
  gzclose(f);
  std::ifstream in(temp, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  write_file(path, bytes.substr(0, std::min(keep_bytes, bytes.size())));
  fs::remove(temp);
}


std::vector<std::string> read_documents(const InputRange& range, const DocumentOptions& options = {}) {
  DocumentReader reader(range, options);
  std::vector<std::string> docs;
  Document doc;
  while (reader.next(doc)) docs.push_back(doc.text);
  return docs;
}

std::vector<std::string> documents_of(const std::string& path) {
  std::vector<std::string> docs;
  for (const InputRange& r : plan_ranges({path}, 0)) {
    const std::vector<std::string> part = read_documents(r);
    docs.insert(docs.end(), part.begin(), part.end());
  }
  return docs;
}

// Every document of a prepared directory, decoded with the byte tokenizer.
std::vector<std::string> prepared_documents(const std::string& dir) {
  const ShardSet set = ShardSet::open(dir);
  std::vector<std::string> docs;
  const auto tok = tokenizer_create("byte");
  for (size_t s = 0; s < set.shard_count(); ++s) {
    const TokenShard& shard = set.shard(s);
    for (int64_t d = 0; d < shard.document_count(); ++d) {
      const int64_t begin = shard.document_start(d);
      const int64_t end = d + 1 < shard.document_count() ? shard.document_start(d + 1) : shard.token_count();
      std::vector<int32_t> ids(static_cast<size_t>(end - begin));
      shard.read(begin, end - begin, ids.data());
      EXPECT_EQ(ids.back(), tok->eod_id());
      docs.push_back(tok->decode(ids.data(), ids.size()));
    }
  }
  return docs;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

TEST(DataDocuments, FormatsAreDetected) {
  const std::string root = fresh_dir("formats");
  write_file(root + "/a.txt", "one\n%\ntwo\n");
  write_file(root + "/b.txt", "one\n\ntwo\n");
  write_file(root + "/c.jsonl", "{\"text\": \"x\"}\n");
  write_gzip(root + "/d.jsonl.gz", "{\"text\": \"x\"}\n");
  write_gzip(root + "/e.gz", "one\n%\ntwo\n");
  EXPECT_EQ(detect_format(root + "/a.txt"), DocumentFormat::kFortune);
  EXPECT_EQ(detect_format(root + "/b.txt"), DocumentFormat::kParagraphs);
  EXPECT_EQ(detect_format(root + "/c.jsonl"), DocumentFormat::kJsonl);
  EXPECT_EQ(detect_format(root + "/d.jsonl.gz"), DocumentFormat::kJsonl);
  EXPECT_EQ(detect_format(root + "/e.gz"), DocumentFormat::kFortune);
  EXPECT_FALSE(is_gzip_file(root + "/a.txt"));
  EXPECT_TRUE(is_gzip_file(root + "/e.gz"));
  EXPECT_EQ(documents_of(root + "/e.gz"), (std::vector<std::string>{"one", "two"}));
  // Only the first kFormatProbeBytes decide; a last "%" without its newline counts at the end.
  const size_t probe = kFormatProbeBytes;
  write_file(root + "/f.txt", "one\r\n%\r\ntwo");
  write_file(root + "/g.txt", "one\n%");
  write_file(root + "/h.txt", std::string(probe - 3, 'a') + "\n%\nb\n");  // ends at the probe's end
  write_file(root + "/i.txt", std::string(probe - 2, 'a') + "\n%x\n%\n");  // "%" cut at the end
  write_file(root + "/j.txt", std::string(probe, 'a') + "\n%\nb\n");  // past the probe
  EXPECT_EQ(detect_format(root + "/f.txt"), DocumentFormat::kFortune);
  EXPECT_EQ(detect_format(root + "/g.txt"), DocumentFormat::kFortune);
  EXPECT_EQ(detect_format(root + "/h.txt"), DocumentFormat::kFortune);
  EXPECT_EQ(detect_format(root + "/i.txt"), DocumentFormat::kParagraphs);
  EXPECT_EQ(detect_format(root + "/j.txt"), DocumentFormat::kParagraphs);
}

// The unit list rank 0 sends to the others survives any path bytes and the open end.
TEST(DataPrepare, UnitListsRoundTrip) {
  std::vector<InputRange> units(4);
  units[0] = {"plain.txt", DocumentFormat::kFortune, false, 0, 4096};
  units[1] = {"dir with spaces/a\nb \xff\xfe.jsonl.gz", DocumentFormat::kJsonl, true, 0, UINT64_MAX};
  units[2] = {"", DocumentFormat::kParagraphs, false, 123, 456};
  units[3] = {std::string(300, 'p'), DocumentFormat::kParagraphs, false, 1ull << 40, (1ull << 40) + 7};
  const std::vector<InputRange> back = decode_units(encode_units(units));
  ASSERT_EQ(back.size(), units.size());
  for (size_t i = 0; i < units.size(); ++i) {
    EXPECT_EQ(back[i].path, units[i].path) << i;
    EXPECT_EQ(back[i].format, units[i].format) << i;
    EXPECT_EQ(back[i].compressed, units[i].compressed) << i;
    EXPECT_EQ(back[i].begin, units[i].begin) << i;
    EXPECT_EQ(back[i].end, units[i].end) << i;
  }
  EXPECT_TRUE(decode_units(encode_units({})).empty());
}

TEST(DataDocuments, JsonlFieldsLanguagesAndRepairs) {
  const std::string root = fresh_dir("jsonl");
  write_file(root + "/a.jsonl",
             "{\"body\": \"Hallo Welt\", \"lang\": \"de\"}\n"
             "\n"
             "{\"body\": \"  \", \"lang\": \"de\"}\n"
             "{\"body\": \"bad \xFF\xFE byte\", \"id\": 3}\n"
             "{\"body\": \"\\u4f60\\u597d\", \"lang\": \"zh\"}\n");
  DocumentOptions options;
  options.text_field = "body";
  options.language_field = "lang";
  DocumentReader reader(plan_ranges({root + "/a.jsonl"}, 0)[0], options);
  Document doc;
  ASSERT_TRUE(reader.next(doc));
  EXPECT_EQ(doc.text, "Hallo Welt");
  EXPECT_EQ(doc.language, "de");
  ASSERT_TRUE(reader.next(doc));
  EXPECT_EQ(doc.text, "bad \xEF\xBF\xBD byte");
  EXPECT_EQ(doc.repaired, 1u);
  EXPECT_EQ(doc.language, "");
  ASSERT_TRUE(reader.next(doc));
  EXPECT_EQ(doc.text, "\xE4\xBD\xA0\xE5\xA5\xBD");
  EXPECT_EQ(doc.language, "zh");
  EXPECT_FALSE(reader.next(doc));
  EXPECT_EQ(reader.empty_skipped(), 1u);
}

TEST(DataDocuments, JsonlErrorsNameFileAndLine) {
  const std::string root = fresh_dir("jsonl_errors");
  write_file(root + "/a.jsonl", "{\"text\": \"ok\"}\n{\"txt\": \"typo\"}\n");
  std::string message = user_error_of([&] { read_documents(plan_ranges({root + "/a.jsonl"}, 0)[0]); });
  EXPECT_NE(message.find(root + "/a.jsonl:2:"), std::string::npos) << message;
  EXPECT_NE(message.find("\"text\""), std::string::npos) << message;
  write_file(root + "/b.jsonl", "{\"text\": \"ok\"}\n\n\n{\"text\": \"broken\n");
  message = user_error_of([&] { read_documents(plan_ranges({root + "/b.jsonl"}, 0)[0]); });
  EXPECT_NE(message.find(root + "/b.jsonl:4:"), std::string::npos) << message;
}

TEST(DataDocuments, TruncatedGzipIsAnError) {
  const std::string root = fresh_dir("gzip_truncated");
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "document " + std::to_string(i * 7919) + "\n%\n";
  write_gzip(root + "/a.gz", text, 3000);
  const std::string message = user_error_of([&] { documents_of(root + "/a.gz"); });
  EXPECT_NE(message.find(root + "/a.gz"), std::string::npos) << message;
}

// Byte ranges cut at document boundaries read exactly the documents of the whole file.
TEST(DataDocuments, RangesPartitionTheDocuments) {
  const std::string root = fresh_dir("ranges");
  std::string fortune = "preamble line\n%\n", paragraphs = "\xEF\xBB\xBF", jsonl;
  for (int i = 0; i < 300; ++i) {
    const std::string body = "doc " + std::to_string(i) + std::string(i % 17, 'x') + "\nsecond line " + std::to_string(i);
    fortune += body + (i % 50 == 0 ? "\n%\n%\n" : "\n%\n");
    paragraphs += body + (i % 3 ? "\n\n" : "\r\n \r\n\n");
    jsonl += "{\"text\": \"" + std::to_string(i) + std::string(i % 13, 'y') + "\"}\n";
  }
  write_file(root + "/f.txt", fortune);
  write_file(root + "/p.txt", paragraphs);
  write_file(root + "/j.jsonl", jsonl);
  for (const char* name : {"f.txt", "p.txt", "j.jsonl"}) {
    const std::string path = root + "/" + name;
    const std::vector<std::string> whole = read_documents(plan_ranges({path}, 0).at(0));
    ASSERT_GE(whole.size(), 300u) << name;
    for (uint64_t target : {1, 7, 100, 1000}) {
      const std::vector<InputRange> ranges = plan_ranges({path}, target);
      if (target <= 100) {
        EXPECT_GT(ranges.size(), 20u) << name;
      }
      std::vector<std::string> joined;
      uint64_t previous_end = 0;
      for (const InputRange& r : ranges) {
        EXPECT_EQ(r.begin, previous_end) << name;
        previous_end = r.end;
        const std::vector<std::string> part = read_documents(r);
        joined.insert(joined.end(), part.begin(), part.end());
      }
      EXPECT_EQ(previous_end, UINT64_MAX) << name;
      EXPECT_EQ(joined, whole) << name << " target " << target;
    }
  }
  // Text before the first "%" is a document (fortune files start with one); the doubled "%"
  // lines enclose empty documents, counted and skipped.
  DocumentReader reader(plan_ranges({root + "/f.txt"}, 0).at(0), {});
  Document doc;
  ASSERT_TRUE(reader.next(doc));
  EXPECT_EQ(doc.text, "preamble line");
  while (reader.next(doc)) {
  }
  EXPECT_EQ(reader.empty_skipped(), 6u);
}

// The output depends on the inputs only: units, threads and processes change nothing.
TEST(DataPrepare, UnitsThreadsAndProcessesGiveTheSameShards) {
  const std::string root = fresh_dir("parallel");
  fs::create_directories(root + "/in");
  std::string a, b;
  for (int i = 0; i < 400; ++i) {
    a += "fortune " + std::to_string(i) + " " + std::string(i % 11, 'a') + "\n%\n";
    b += "{\"text\": \"json " + std::to_string(i) + "\", \"language\": \"" + (i % 2 ? "de" : "fr") + "\"}\n";
  }
  write_file(root + "/in/a.txt", a);
  write_gzip(root + "/in/b.jsonl.gz", b);
  PrepareOptions base;
  base.inputs = {root + "/in"};
  base.language = "en";
  base.shard_bytes = 1000;

  base.out = root + "/one";
  base.unit_bytes = 1ull << 30;
  const PrepareStats one = prepare(base);
  EXPECT_EQ(one.units, 2u);
  const std::vector<std::string> expected = prepared_documents(base.out);
  ASSERT_EQ(expected.size(), 800u);

  PrepareOptions split = base;
  split.out = root + "/split";
  split.unit_bytes = 256;
  split.threads = 3;
  const PreparePlan plan = prepare_plan(split, true);
  EXPECT_GT(plan.units.size(), 10u);
  // Three "processes" of three threads each, run one after another.
  // Each reports its own units as they finish; together they account for every input byte
  // (the compressed file at its size on disk).
  size_t units = 0;
  uint64_t bytes = 0;
  for (int rank = 0; rank < 3; ++rank) {
    std::vector<PrepareProgress> heard;
    prepare_units(plan, rank, 3, [&](const PrepareProgress& p) { heard.push_back(p); });
    ASSERT_FALSE(heard.empty());
    for (size_t i = 0; i < heard.size(); ++i) {
      EXPECT_EQ(heard[i].units_done, i + 1);
      EXPECT_EQ(heard[i].units, heard.size());
      if (i) {
        EXPECT_GT(heard[i].bytes_done, heard[i - 1].bytes_done);
      }
    }
    EXPECT_EQ(heard.back().bytes_done, heard.back().bytes);
    units += heard.back().units;
    bytes += heard.back().bytes;
  }
  EXPECT_EQ(units, plan.units.size());
  EXPECT_EQ(bytes, fs::file_size(root + "/in/a.txt") + fs::file_size(root + "/in/b.jsonl.gz"));
  // The merge as under mpirun: planned once, each "process" copies its own units' tokens.
  const PrepareStats stats = prepare_merge_plan(plan);
  for (int rank = 2; rank >= 0; --rank) prepare_merge_copy(plan, rank, 3);
  prepare_merge_commit(plan, stats);
  EXPECT_EQ(prepared_documents(split.out), expected);
  EXPECT_FALSE(fs::exists(split.out + "/.units"));
  // Shards are cut by size, not by unit: the same files, byte for byte.
  ASSERT_EQ(stats.shards, one.shards);
  for (size_t s = 0; s < stats.shards; ++s) {
    std::ifstream x(root + "/one/" + shard_file_name(s), std::ios::binary), y(split.out + "/" + shard_file_name(s), std::ios::binary);
    EXPECT_EQ(std::string((std::istreambuf_iterator<char>(x)), {}), std::string((std::istreambuf_iterator<char>(y)), {}));
  }
  EXPECT_EQ(stats.languages.at("en").documents, 400u);
  EXPECT_EQ(stats.languages.at("de").documents, 200u);
  EXPECT_EQ(stats.languages.at("fr").documents, 200u);
  ASSERT_EQ(stats.files.size(), 2u);
  EXPECT_EQ(stats.files[0].counts.documents, 400u);
  EXPECT_EQ(stats.files[1].counts.documents, 400u);
  const nlohmann::json json = read_json(split.out + "/stats.json");
  EXPECT_EQ(json["languages"]["de"]["documents"], 200);
  EXPECT_EQ(json["documents"], 800);
}

// A merge that fails part-way (a unit's records damaged after earlier units' shards were laid
// out) names the unit and leaves no shard, finished or not, behind.
TEST(DataPrepare, FailedMergeLeavesNoShardBehind) {
  const std::string root = fresh_dir("merge_fails");
  std::string text;
  for (int i = 0; i < 300; ++i) text += "document number " + std::to_string(i) + " of a few\n%\n";
  write_file(root + "/a.txt", text);
  PrepareOptions options;
  options.inputs = {root + "/a.txt"};
  options.out = root + "/out";
  options.shard_bytes = 500;
  options.unit_bytes = 2000;
  const PreparePlan plan = prepare_plan(options, true);
  ASSERT_GE(plan.units.size(), 3u);
  prepare_units(plan, 0, 1);
  const std::string records = options.out + "/.units/unit_000002/docs.bin";
  fs::resize_file(records, fs::file_size(records) - 32);
  try {
    prepare_finish(plan);
    FAIL() << "a damaged unit was merged";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("unit_000002"), std::string::npos) << e.what();
  }
  for (const auto& entry : fs::directory_iterator(options.out))
    EXPECT_FALSE(entry.path().filename().string().starts_with("shard_")) << entry.path();
}

TEST(DataPrepare, ExactDuplicatesAreRemovedFirstOccurrenceKept) {
  const std::string root = fresh_dir("dedup");
  write_file(root + "/a.txt", "same\n%\nunique a\n%\nsame\n%\n");
  write_file(root + "/b.jsonl", "{\"text\": \"same\", \"language\": \"de\"}\n{\"text\": \"unique b\", \"language\": \"de\"}\n{\"text\": \"unique a\"}\n");
  PrepareOptions options;
  options.inputs = {root + "/a.txt", root + "/b.jsonl"};
  options.out = root + "/out";
  options.dedup = true;
  options.language = "en";
  options.unit_bytes = 8;
  options.threads = 2;
  const PrepareStats stats = prepare(options);
  EXPECT_EQ(prepared_documents(options.out), (std::vector<std::string>{"same", "unique a", "unique b"}));
  EXPECT_EQ(stats.total.documents, 3u);
  EXPECT_EQ(stats.total.duplicates_removed, 3u);
  EXPECT_EQ(stats.total.bytes, 4u + 8u + 8u);
  EXPECT_EQ(stats.total.tokens, 4u + 8u + 8u + 3u);
  EXPECT_EQ(stats.languages.at("en").documents, 2u);
  EXPECT_EQ(stats.languages.at("en").duplicates_removed, 2u);  // "same" again, "unique a" in b
  EXPECT_EQ(stats.languages.at("de").documents, 1u);
  EXPECT_EQ(stats.languages.at("de").duplicates_removed, 1u);
  EXPECT_EQ(stats.files[1].counts.duplicates_removed, 2u);

  PrepareOptions keep = options;
  keep.out = root + "/keep";
  keep.dedup = false;
  EXPECT_EQ(prepare(keep).total.documents, 6u);
}

TEST(DataPrepare, DocumentsSharingAnEvaluationNgramAreExcluded) {
  const std::string root = fresh_dir("exclude");
  const std::string eval = "the quick brown fox jumps over the lazy dog near the river bank today";
  write_file(root + "/eval.txt", eval + "\n");
  write_file(root + "/train.txt",
             "clean document one\n%\n"
             "Copied: THE QUICK, brown fox jumps over the lazy dog near the river bank! and more\n%\n"
             "almost: quick brown fox jumps over the lazy dog near the river bank\n%\n"
             "clean document two\n%\n");
  PrepareOptions options;
  options.inputs = {root + "/train.txt"};
  options.out = root + "/out";
  options.exclude_ngrams_from = {root + "/eval.txt"};
  options.exclude_n = 13;
  const PrepareStats stats = prepare(options);
  EXPECT_EQ(prepared_documents(options.out),
            (std::vector<std::string>{"clean document one", "almost: quick brown fox jumps over the lazy dog near the river bank",
                                      "clean document two"}));
  EXPECT_EQ(stats.total.contaminated_removed, 1u);
  EXPECT_EQ(read_json(options.out + "/stats.json")["contaminated_removed"], 1);
  options.out = root + "/out12";
  options.exclude_n = 12;  // the near miss shares 12 words in a row
  EXPECT_EQ(prepare(options).total.contaminated_removed, 2u);
  options.out = root + "/missing";
  options.exclude_ngrams_from = {root + "/no-such-eval.txt"};
  const std::string message = user_error_of([&] { prepare(options); });
  EXPECT_NE(message.find("no-such-eval.txt"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(options.out));
}

TEST(DataPrepare, OutputHoldingShardsIsRefusedAndStaleUnitsAreCleared) {
  const std::string root = fresh_dir("refuse");
  write_file(root + "/a.txt", "x\n%\ny\n%\n");
  PrepareOptions options;
  options.inputs = {root + "/a.txt"};
  options.out = root + "/out";
  fs::create_directories(options.out + "/.units/unit_000007");
  write_file(options.out + "/.units/unit_000007/stats.json", "left over");
  prepare(options);
  EXPECT_FALSE(fs::exists(options.out + "/.units"));
  const std::string message = user_error_of([&] { prepare(options); });
  EXPECT_NE(message.find("already holds shards"), std::string::npos) << message;
}

}  // namespace
}  // namespace tessera::data
