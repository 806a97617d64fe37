#include "data/prepare.h"
#include "data/prepare_internal.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "data/contamination.h"
#include "data/tokenizer.h"
#include "runtime/error.h"

namespace tessera::data {
namespace fs = std::filesystem;
using namespace prepare_detail;
using json = nlohmann::ordered_json;

void PrepareCounts::add(const PrepareCounts& c) {
  documents += c.documents;
  bytes += c.bytes;
  tokens += c.tokens;
  invalid_utf8_repaired += c.invalid_utf8_repaired;
  empty_skipped += c.empty_skipped;
  duplicates_removed += c.duplicates_removed;
  contaminated_removed += c.contaminated_removed;
}

namespace {

constexpr const char* kUndetermined = "und";  // BCP 47: language not determined

uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

// Content hash of a document: two 64-bit lanes over 8-byte words, each word multiplied into
// both lanes with different odd constants and rotations, the length folded in, then finalised.
Hash128 hash_text(std::string_view s) {
  uint64_t a = 0x9e3779b97f4a7c15ull ^ s.size(), b = 0xd6e8feb86659fd93ull + s.size();
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    a = (a ^ (w * 0x87c37b91114253d5ull)) * 0x4cf5ad432745937full;
    a = (a << 31) | (a >> 33);
    b = (b ^ (w * 0x4cf5ad432745937full)) * 0x87c37b91114253d5ull;
    b = (b << 27) | (b >> 37);
    b += a;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, s.data() + i, s.size() - i);
  a ^= mix64(tail + 0x52dce729ull);
  b ^= mix64(tail ^ 0x38495ab5ull);
  a += b;
  b += a;
  return {mix64(a), mix64(b ^ 0x2545f4914f6cdd1dull)};
}


json counts_json(const PrepareCounts& c) {
  return json{{"documents", c.documents},
              {"bytes", c.bytes},
              {"tokens", c.tokens},
              {"invalid_utf8_repaired", c.invalid_utf8_repaired},
              {"empty_skipped", c.empty_skipped},
              {"duplicates_removed", c.duplicates_removed},
              {"contaminated_removed", c.contaminated_removed}};
}



// Tokenizes one unit into <out>/.units/unit_NNNNNN: shards, docs.bin, stats.json (last).
void run_unit(const PreparePlan& plan, const Tokenizer& tokenizer, const NgramIndex* exclude, size_t u) {
  const PrepareOptions& o = plan.options;
  const std::string dir = unit_dir(o.out, u);
  std::error_code ec;
  fs::remove_all(dir, ec);
  const std::string default_language = o.language.empty() ? kUndetermined : o.language;
  std::vector<std::string> names;
  std::vector<PrepareCounts> counts;
  const auto language_index = [&](const std::string& name) -> uint32_t {
    for (size_t i = 0; i < names.size(); ++i)
      if (names[i] == name) return static_cast<uint32_t>(i);
    names.push_back(name);
    counts.emplace_back();
    return static_cast<uint32_t>(names.size() - 1);
  };
  language_index(default_language);

  ShardWriter writer(dir, tokenizer.vocab_size(), o.shard_bytes);
  const std::string records_path = dir + "/docs.bin";
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> records(std::fopen(records_path.c_str(), "wb"), std::fclose);
  if (!records) throw UserError("prepare: cannot write " + records_path + ": " + std::strerror(errno));
  std::vector<char> record_buffer(1 << 16);
  std::setvbuf(records.get(), record_buffer.data(), _IOFBF, record_buffer.size());

  DocumentReader reader(plan.units[u], o.documents);
  Document doc;
  std::vector<int32_t> tokens;
  while (reader.next(doc)) {
    const uint32_t lang = language_index(doc.language.empty() ? default_language : doc.language);
    PrepareCounts& c = counts[lang];
    c.invalid_utf8_repaired += doc.repaired;
    if (exclude && exclude->matches(doc.text)) {
      ++c.contaminated_removed;
      continue;
    }
    tokens = tokenizer.encode(doc.text);
    tokens.push_back(tokenizer.eod_id());
    writer.append_document(tokens.data(), tokens.size());
    ++c.documents;
    c.bytes += doc.text.size();
    c.tokens += tokens.size();
    const DocRecord record{hash_text(doc.text), doc.text.size(), lang, 0};
    if (std::fwrite(&record, sizeof(record), 1, records.get()) != 1)
      throw UserError("prepare: cannot write " + records_path + ": " + std::strerror(errno));
  }
  counts[0].empty_skipped += reader.empty_skipped();
  writer.finish();
  if (std::fclose(records.release()) != 0)
    throw UserError("prepare: cannot write " + records_path + ": " + std::strerror(errno));

  json languages = json::array();
  for (size_t i = 0; i < names.size(); ++i) languages.push_back({{"language", names[i]}, {"counts", counts_json(counts[i])}});
  const json stats{{"shards", writer.shard_count()}, {"languages", languages}};
  write_file_atomic(dir + "/stats.json", stats.dump());
}


bool holds_shards(const std::string& dir) {
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.starts_with("shard_") && name.ends_with(".tok")) return true;
  }
  return false;
}

std::string repaired(const std::string& s) {
  std::string out;
  utf8_repair(s, out);
  return out;
}


}  // namespace

namespace prepare_detail {

std::string unit_dir(const std::string& out, size_t u) {
  char name[32];
  std::snprintf(name, sizeof(name), "unit_%06zu", u);
  return out + "/" + kUnitsDir + "/" + name;
}

PrepareCounts counts_from_json(const json& j) {
  PrepareCounts c;
  c.documents = j.at("documents");
  c.bytes = j.at("bytes");
  c.tokens = j.at("tokens");
  c.invalid_utf8_repaired = j.at("invalid_utf8_repaired");
  c.empty_skipped = j.at("empty_skipped");
  c.duplicates_removed = j.at("duplicates_removed");
  c.contaminated_removed = j.at("contaminated_removed");
  return c;
}

void write_file_atomic(const std::string& path, const std::string& text) {
  const std::string temp = path + ".tmp";
  std::FILE* f = std::fopen(temp.c_str(), "wb");
  const bool ok = f && std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (f && std::fclose(f) != 0) throw UserError("prepare: cannot write " + temp + ": " + std::strerror(errno));
  if (!ok || std::rename(temp.c_str(), path.c_str()) != 0)
    throw UserError("prepare: cannot write " + path + ": " + std::strerror(errno));
}

void for_each_unit(const PreparePlan& plan, int rank, int size, const std::function<void(size_t)>& fn) {
  std::atomic<size_t> next{static_cast<size_t>(rank)};
  std::mutex error_mutex;
  std::exception_ptr error;
  const auto work = [&] {
    try {
      for (;;) {
        const size_t u = next.fetch_add(static_cast<size_t>(size));
        if (u >= plan.units.size()) return;
        {
          std::lock_guard<std::mutex> lock(error_mutex);
          if (error) return;
        }
        fn(u);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  };
  std::vector<std::thread> threads;
  for (int t = 1; t < plan.options.threads; ++t) threads.emplace_back(work);
  work();
  for (std::thread& t : threads) t.join();
  if (error) std::rethrow_exception(error);
}

void write_stats(const std::string& dir, const PrepareStats& stats) {
  json j{{"tokenizer", repaired(stats.tokenizer)}, {"vocab_size", stats.vocab_size},
         {"shards", stats.shards}, {"units", stats.units}};
  const json total = counts_json(stats.total);
  for (const auto& [key, value] : total.items()) j[key] = value;
  json languages = json::object();
  for (const auto& [name, counts] : stats.languages) languages[repaired(name)] = counts_json(counts);
  j["languages"] = languages;
  json files = json::array();
  for (const PrepareFileStats& f : stats.files) {
    json entry{{"path", repaired(f.path)}};  // paths are bytes; stats.json stays valid JSON
    const json counts = counts_json(f.counts);
    for (const auto& [key, value] : counts.items()) entry[key] = value;
    files.push_back(entry);
  }
  j["files"] = files;
  write_file_atomic(dir + "/stats.json", j.dump(2) + "\n");
}

}  // namespace prepare_detail

PreparePlan prepare_plan(const PrepareOptions& options, bool clean) {
  if (options.inputs.empty()) throw UserError("prepare: no inputs given");
  if (options.out.empty()) throw UserError("prepare: no output directory given");
  if (options.shard_bytes == 0) throw UserError("prepare: shard size must be positive");
  if (options.threads < 1) throw UserError("prepare: threads must be at least 1");
  tokenizer_create(options.tokenizer);  // an unknown spec fails before anything is read
  PreparePlan plan;
  plan.options = options;
  // Expanded (and checked) before anything is written: a typo leaves no output behind.
  plan.units = plan_ranges(expand_inputs(options.inputs, "prepare"), options.unit_bytes);
  if (!options.exclude_ngrams_from.empty()) {
    if (options.exclude_n < 1) throw UserError("prepare: --exclude-n must be at least 1");
    expand_inputs(options.exclude_ngrams_from, "prepare --exclude-ngrams-from");
  }
  if (holds_shards(options.out))
    throw UserError("prepare: output directory " + options.out +
                    " already holds shards (choose a new directory or remove them)");
  if (clean) {
    std::error_code ec;
    fs::create_directories(options.out, ec);
    if (ec) throw UserError("prepare: cannot create output directory " + options.out + ": " + ec.message());
    fs::remove_all(options.out + "/" + kUnitsDir, ec);
    fs::create_directories(options.out + "/" + kUnitsDir, ec);
    if (ec) throw UserError("prepare: cannot create " + options.out + "/" + kUnitsDir + ": " + ec.message());
  }
  return plan;
}

// One unit a record: "format compressed begin end path-length\n" and then the path's bytes
// (any bytes: paths need not be UTF-8).
std::string encode_units(const std::vector<InputRange>& units) {
  std::string out;
  for (const InputRange& r : units) {
    char head[96];
    std::snprintf(head, sizeof head, "%d %d %llu %llu %zu\n", static_cast<int>(r.format),
                  r.compressed ? 1 : 0, static_cast<unsigned long long>(r.begin),
                  static_cast<unsigned long long>(r.end), r.path.size());
    out += head;
    out += r.path;
  }
  return out;
}

std::vector<InputRange> decode_units(const std::string& text) {
  std::vector<InputRange> units;
  for (size_t at = 0; at < text.size();) {
    const size_t nl = text.find('\n', at);
    int format = 0, compressed = 0;
    unsigned long long begin = 0, end = 0;
    size_t length = 0;
    TS_ASSERT(nl != std::string::npos &&
                  std::sscanf(text.c_str() + at, "%d %d %llu %llu %zu", &format, &compressed, &begin,
                              &end, &length) == 5 &&
                  nl + 1 + length <= text.size(),
              "prepare: a damaged unit list");
    InputRange r;
    r.format = static_cast<DocumentFormat>(format);
    r.compressed = compressed != 0;
    r.begin = begin;
    r.end = end;
    r.path = text.substr(nl + 1, length);
    units.push_back(std::move(r));
    at = nl + 1 + length;
  }
  return units;
}

void prepare_units(const PreparePlan& plan, int rank, int size,
                   const std::function<void(const PrepareProgress&)>& progress) {
  const std::unique_ptr<Tokenizer> tokenizer = tokenizer_create(plan.options.tokenizer);
  std::unique_ptr<NgramIndex> exclude;
  if (!plan.options.exclude_ngrams_from.empty())
    exclude = std::make_unique<NgramIndex>(NgramIndex::from_files(
        plan.options.exclude_ngrams_from, plan.options.exclude_n, plan.options.documents,
        "prepare --exclude-ngrams-from"));
  std::mutex mutex;
  // Input bytes of each of this process's units (for progress only).
  std::vector<uint64_t> unit_bytes(progress ? plan.units.size() : 0);
  PrepareProgress done;  // under mutex
  for (size_t u = static_cast<size_t>(rank); u < unit_bytes.size(); u += static_cast<size_t>(size)) {
    const InputRange& r = plan.units[u];
    std::error_code ec;
    const uint64_t n = r.end != UINT64_MAX ? r.end : static_cast<uint64_t>(fs::file_size(r.path, ec));
    unit_bytes[u] = ec ? 0 : n - std::min(r.begin, n);
    ++done.units;
    done.bytes += unit_bytes[u];
  }
  for_each_unit(plan, rank, size, [&](size_t u) {
    run_unit(plan, *tokenizer, exclude.get(), u);
    if (progress) {
      std::lock_guard<std::mutex> lock(mutex);
      ++done.units_done;
      done.bytes_done += unit_bytes[u];
      progress(done);
    }
  });
}

PrepareStats prepare(const PrepareOptions& options) {
  const PreparePlan plan = prepare_plan(options, true);
  prepare_units(plan, 0, 1);
  return prepare_finish(plan);
}

}  // namespace tessera::data
