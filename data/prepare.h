// Corpus preparation: text files -> token shards (`tessera prepare`).
//
// Inputs are read as documents by data/documents.h (plain text in fortune or paragraph form,
// JSONL, any of them gzip-compressed). Every document is tokenized and followed by the
// tokenizer's end-of-document id.
//
// Work is cut into units of about `unit_bytes` of input (a compressed file is one unit), cut at
// document boundaries. Units are spread over the processes (unit u goes to process
// u mod size) and over each process's threads; a unit writes its own shards and a record per
// document into <out>/.units/. The merge then lays the final shards out in unit order from
// those records, dropping exact duplicates (128-bit content hash, first occurrence kept) when
// asked, and every process copies its own units' kept tokens into place. The output depends on the inputs and unit_bytes only, never on how many
// processes or threads did the work. Memory stays bounded whatever the corpus size: a worker
// holds one document; deduplication holds 16 bytes per distinct document.
//
// Output. `out` receives shard_NNNNN.tok files (docs/data-format.md) and stats.json with the
// counts below, in total, per language and per source file.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "data/documents.h"
#include "data/shard.h"

namespace tessera::data {

struct PrepareOptions {
  std::string tokenizer = "byte";   // spec for tokenizer_create
  std::vector<std::string> inputs;  // files or directories
  std::string out;                  // directory for the shards and stats.json
  std::string language;             // language of documents that do not name one ("" = "und")
  DocumentOptions documents;        // JSONL field names
  bool dedup = false;               // drop exact duplicate documents
  // Drop training documents sharing an n-gram with these evaluation files (contamination).
  std::vector<std::string> exclude_ngrams_from;
  int exclude_n = 13;
  uint64_t shard_bytes = kDefaultShardBytes;
  uint64_t unit_bytes = 32ull << 20;
  int threads = 1;  // worker threads of this process
};

struct PrepareCounts {
  uint64_t documents = 0;              // written
  uint64_t bytes = 0;                  // UTF-8 bytes of the written documents, after repair
  uint64_t tokens = 0;                 // including one end-of-document per document
  uint64_t invalid_utf8_repaired = 0;  // runs of invalid bytes replaced by U+FFFD
  uint64_t empty_skipped = 0;          // documents without text
  uint64_t duplicates_removed = 0;     // exact duplicates of an earlier document
  uint64_t contaminated_removed = 0;   // sharing an n-gram with --exclude-ngrams-from
  void add(const PrepareCounts& other);
};

struct PrepareFileStats {
  std::string path;
  PrepareCounts counts;
};

struct PrepareStats {
  std::string tokenizer;  // name() of the tokenizer used: the spec that recreates it
  int64_t vocab_size = 0;
  size_t shards = 0;
  size_t units = 0;
  PrepareCounts total;
  std::map<std::string, PrepareCounts> languages;
  std::vector<PrepareFileStats> files;  // per source file, in input order
};

// The units and everything checked before any work starts. Identical on every process.
struct PreparePlan {
  PrepareOptions options;
  std::vector<InputRange> units;
};

// Expands and checks the inputs, the tokenizer and the output directory and cuts the units.
// Throws UserError (missing input, unknown tokenizer, an output directory holding shards).
// `clean` (one process only): creates `out` and removes what an interrupted run left there.
PreparePlan prepare_plan(const PrepareOptions& options, bool clean);
// How far a process is through its own units; input bytes are those of the (uncompressed)
// ranges, whole compressed files counting their size on disk.
struct PrepareProgress {
  size_t units_done = 0, units = 0;
  uint64_t bytes_done = 0, bytes = 0;
};
// The units as text and back (JSON), for one process to plan and send the plan to the others:
// then no other process reads the inputs before its own units.
std::string encode_units(const std::vector<InputRange>& units);
std::vector<InputRange> decode_units(const std::string& text);

// Tokenizes units rank, rank + size, ... with options.threads threads. `progress` (optional)
// hears after each finished unit, one call at a time.
void prepare_units(const PreparePlan& plan, int rank, int size,
                   const std::function<void(const PrepareProgress&)>& progress = {});
// After every process finished its units, the merge in three collective steps:
// prepare_merge_plan (one process) decides duplicates, lays the final shards out (header and
// document index written, tokens not yet) and returns the statistics; prepare_merge_copy (every
// process, for its own units, on options.threads threads) copies the kept tokens into place;
// prepare_merge_commit (one process) renames the shards into place and writes stats.json.
// prepare_merge_abandon removes the half-made shards of a merge that failed.
PrepareStats prepare_merge_plan(const PreparePlan& plan);
void prepare_merge_copy(const PreparePlan& plan, int rank, int size);
void prepare_merge_commit(const PreparePlan& plan, const PrepareStats& stats);
void prepare_merge_abandon(const PreparePlan& plan);
// The three in one process.
PrepareStats prepare_finish(const PreparePlan& plan);

// All three in one process. Throws UserError for a missing or unreadable input, an output
// directory that already holds shards, or inputs without a single non-empty document.
PrepareStats prepare(const PrepareOptions& options);

}  // namespace tessera::data
