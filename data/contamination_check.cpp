// contamination_check: the scan of a prepared directory behind `tessera contamination`.
#include <algorithm>
#include <atomic>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "data/contamination.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "runtime/error.h"

namespace tessera::data {
namespace fs = std::filesystem;
namespace {

constexpr size_t kExampleBytes = 200;
constexpr int64_t kUnitTokens = 1 << 20;  // training tokens per work unit

struct EvalDocument {
  uint32_t file;
  uint64_t offset;
  std::string text;
};

// Whitespace runs become one space; cut to at most `limit` bytes at a character boundary,
// with "…" when cut.
std::string one_line(std::string_view text, size_t limit) {
  std::string out;
  bool space = false;
  for (const char c : text) {
    const bool is_space = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
    if (is_space) {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  if (out.size() <= limit) return out;
  size_t cut = limit;
  while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
  out.resize(cut);
  return out + "\u2026";
}

std::string tokenizer_spec_of(const std::string& dir) {
  const std::string path = dir + "/stats.json";
  std::ifstream in(path);
  if (!in)
    throw UserError("contamination: " + path + " is missing (is " + dir +
                    " a directory written by tessera prepare?)");
  nlohmann::json stats;
  try {
    stats = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception&) {
    throw UserError("contamination: " + path + " is not valid JSON");
  }
  const auto spec = stats.is_object() ? stats.find("tokenizer") : stats.end();
  if (!stats.is_object() || spec == stats.end() || !spec->is_string())
    throw UserError("contamination: " + path + " names no tokenizer");
  return spec->get<std::string>();
}

// A range of training documents [first, last) of one shard, scanned by one thread.
struct Unit {
  size_t shard;
  int64_t first, last;
};

std::vector<Unit> plan_units(const ShardSet& shards) {
  std::vector<Unit> units;
  for (size_t s = 0; s < shards.shard_count(); ++s) {
    const TokenShard& shard = shards.shard(s);
    int64_t first = 0;
    for (int64_t d = 1; d <= shard.document_count(); ++d) {
      const int64_t end =
          d < shard.document_count() ? shard.document_start(d) : shard.token_count();
      if (end - shard.document_start(first) >= kUnitTokens || d == shard.document_count()) {
        units.push_back({s, first, d});
        first = d;
      }
    }
  }
  return units;
}

// What the scan learns about the evaluation documents; written by every thread at once.
class ScanState {
 public:
  explicit ScanState(const NgramIndex& index) : slot_begin_(index.document_count() + 1, 0) {
    for (uint32_t d = 0; d < index.document_count(); ++d)
      slot_begin_[d + 1] = slot_begin_[d] + index.document_ngrams(d);
    found_ = std::vector<std::atomic<uint64_t>>((slot_begin_.back() + 63) / 64);
    training_documents_ = std::vector<std::atomic<uint64_t>>(index.document_count());
    first_training_ = std::vector<std::atomic<uint64_t>>(index.document_count());
    for (auto& f : first_training_) f.store(UINT64_MAX, std::memory_order_relaxed);
    first_ngram_.assign(index.document_count(), 0);
  }

  // The hits of global training document `training` (every hit of one document at once).
  void record(uint64_t training, const std::vector<NgramIndex::Hit>& hits,
              std::vector<uint32_t>& docs) {
    docs.clear();
    for (const NgramIndex::Hit& hit : hits) {
      const uint64_t bit = slot_begin_[hit.doc] + hit.ngram;
      found_[bit / 64].fetch_or(uint64_t{1} << (bit % 64), std::memory_order_relaxed);
      docs.push_back(hit.doc);
      // The example is the first training document in stream order, whichever thread finds it.
      if (training < first_training_[hit.doc].load(std::memory_order_relaxed)) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (training < first_training_[hit.doc].load(std::memory_order_relaxed)) {
          first_training_[hit.doc].store(training, std::memory_order_relaxed);
          first_ngram_[hit.doc] = hit.ngram;
        }
      }
    }
    std::sort(docs.begin(), docs.end());
    docs.erase(std::unique(docs.begin(), docs.end()), docs.end());
    for (const uint32_t d : docs) training_documents_[d].fetch_add(1, std::memory_order_relaxed);
  }

  uint64_t shared_ngrams(uint32_t doc) const {
    uint64_t count = 0;
    for (uint64_t bit = slot_begin_[doc]; bit < slot_begin_[doc + 1]; ++bit)
      count += (found_[bit / 64].load(std::memory_order_relaxed) >> (bit % 64)) & 1;
    return count;
  }
  uint64_t training_documents(uint32_t doc) const { return training_documents_[doc].load(); }
  uint64_t first_training(uint32_t doc) const { return first_training_[doc].load(); }
  uint32_t first_ngram(uint32_t doc) const { return first_ngram_[doc]; }

 private:
  std::vector<uint64_t> slot_begin_;  // document d's n-grams are bits [slot_begin_[d], ..[d+1])
  std::vector<std::atomic<uint64_t>> found_;               // n-grams seen in training
  std::vector<std::atomic<uint64_t>> training_documents_;  // per evaluation document
  std::vector<std::atomic<uint64_t>> first_training_;      // global training document index
  std::vector<uint32_t> first_ngram_;                      // its n-gram, under mutex_
  std::mutex mutex_;
};

// Every training document, decoded one at a time per thread, against the index.
// first_document[s] is the global index of shard s's first document.
void scan_training(const ShardSet& shards, const std::vector<int64_t>& first_document,
                   const Tokenizer& tokenizer, const NgramIndex& index, int threads,
                   ScanState& state) {
  const std::vector<Unit> units = plan_units(shards);
  std::atomic<size_t> next{0};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  const auto work = [&] {
    std::vector<int32_t> tokens;
    std::vector<uint64_t> words;
    std::vector<NgramIndex::Hit> hits;
    std::vector<uint32_t> docs;
    try {
      for (size_t u; (u = next.fetch_add(1)) < units.size();) {
        const TokenShard& shard = shards.shard(units[u].shard);
        for (int64_t d = units[u].first; d < units[u].last; ++d) {
          const int64_t begin = shard.document_start(d);
          const int64_t end =
              d + 1 < shard.document_count() ? shard.document_start(d + 1) : shard.token_count();
          tokens.resize(end - begin);
          shard.read(begin, end - begin, tokens.data());
          word_hashes(tokenizer.decode(tokens.data(), tokens.size()), words);
          hits.clear();
          index.find(words, false, hits);
          if (!hits.empty()) state.record(first_document[units[u].shard] + d, hits, docs);
        }
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(failure_mutex);
      if (!failure) failure = std::current_exception();
      next.store(units.size());
    }
  };
  std::vector<std::thread> pool;
  const size_t count = std::min<size_t>(threads, std::max<size_t>(units.size(), 1));
  for (size_t t = 1; t < count; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace

ContaminationReport contamination_check(const std::string& train_dir,
                                        const std::vector<std::string>& eval_inputs,
                                        const ContaminationOptions& options) {
  if (options.n < 1)
    throw UserError("contamination: --n must be at least 1, got " + std::to_string(options.n));
  std::error_code ec;
  if (!fs::is_directory(train_dir, ec))
    throw UserError("contamination: training directory " + train_dir + " does not exist");
  ContaminationReport report;
  report.n = options.n;
  report.train_dir = train_dir;
  report.tokenizer = tokenizer_spec_of(train_dir);
  const std::unique_ptr<Tokenizer> tokenizer = tokenizer_create(report.tokenizer);
  const ShardSet shards = ShardSet::open(train_dir);
  if (shards.vocab_size() != tokenizer->vocab_size())
    throw UserError("contamination: the shards of " + train_dir + " have vocab_size " +
                    std::to_string(shards.vocab_size()) + ", tokenizer " + report.tokenizer +
                    " has " + std::to_string(tokenizer->vocab_size()));
  report.training_documents = shards.total_documents();
  report.training_tokens = shards.total_tokens();

  // Evaluation documents: their index, and their texts for the examples.
  const std::vector<std::string> files = expand_inputs(eval_inputs, "contamination");
  DocumentOptions document_options = options.documents;
  document_options.language_field.clear();  // unused here: never an error
  NgramIndex index(options.n);
  std::vector<EvalDocument> docs;
  for (uint32_t f = 0; f < files.size(); ++f) {
    InputRange range;
    range.path = files[f];
    range.compressed = is_gzip_file(files[f]);
    range.format = detect_format(files[f]);
    DocumentReader reader(range, document_options);
    Document doc;
    while (reader.next(doc)) {
      index.add(doc.text);
      docs.push_back({f, doc.offset, std::move(doc.text)});
    }
  }
  index.finish();

  std::vector<int64_t> first_document(shards.shard_count() + 1, 0);
  for (size_t s = 0; s < shards.shard_count(); ++s)
    first_document[s + 1] = first_document[s] + shards.shard(s).document_count();
  ScanState state(index);
  const int threads =
      options.threads > 0 ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  scan_training(shards, first_document, *tokenizer, index, threads, state);

  report.files.resize(files.size());
  for (size_t f = 0; f < files.size(); ++f) report.files[f].path = files[f];
  std::vector<std::vector<uint32_t>> contaminated(files.size());
  for (uint32_t d = 0; d < docs.size(); ++d) {
    ContaminationFileReport& file = report.files[docs[d].file];
    ++file.documents;
    file.short_documents += index.document_words(d) < static_cast<uint64_t>(options.n);
    if (state.shared_ngrams(d) == 0) continue;
    ++file.contaminated;
    contaminated[docs[d].file].push_back(d);
  }
  for (size_t f = 0; f < files.size(); ++f) {
    // Worst first: highest share of shared n-grams (a/b > c/d as a*d > c*b), then most shared.
    std::vector<uint32_t>& worst = contaminated[f];
    const auto worse = [&](uint32_t a, uint32_t b) {
      const uint64_t sa = state.shared_ngrams(a), sb = state.shared_ngrams(b);
      const unsigned __int128 lhs = static_cast<unsigned __int128>(sa) * index.document_ngrams(b);
      const unsigned __int128 rhs = static_cast<unsigned __int128>(sb) * index.document_ngrams(a);
      return lhs != rhs ? lhs > rhs : sa != sb ? sa > sb : a < b;
    };
    const size_t keep = std::min(options.top, worst.size());
    std::partial_sort(worst.begin(), worst.begin() + keep, worst.end(), worse);
    for (size_t i = 0; i < keep; ++i) {
      const uint32_t d = worst[i];
      const EvalDocument& doc = docs[d];
      ContaminationExample example;
      example.line = line_number_at(files[f], doc.offset);
      example.offset = doc.offset;
      example.text = one_line(doc.text, kExampleBytes);
      example.ngrams = index.document_ngrams(d);
      example.shared_ngrams = state.shared_ngrams(d);
      example.training_documents = state.training_documents(d);
      const std::vector<std::pair<size_t, size_t>> spans = word_spans(doc.text);
      const size_t first_word = state.first_ngram(d);
      const size_t last_word = std::min<size_t>(first_word + options.n, spans.size()) - 1;
      example.shared_text =
          one_line(std::string_view(doc.text).substr(
                       spans[first_word].first, spans[last_word].second - spans[first_word].first),
                   kExampleBytes);
      const uint64_t training = state.first_training(d);
      const size_t shard = std::upper_bound(first_document.begin(), first_document.end(),
                                            static_cast<int64_t>(training)) -
                           first_document.begin() - 1;
      example.training_shard = shards.shard(shard).path();
      example.training_document = static_cast<int64_t>(training) - first_document[shard];
      report.files[f].examples.push_back(std::move(example));
    }
  }
  return report;
}

}  // namespace tessera::data
