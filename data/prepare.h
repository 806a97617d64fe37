// Corpus preparation: plain-text files -> token shards (`tessera prepare`).
//
// Input format. Every input is a file, or a directory whose regular files are taken
// recursively in path order (names starting with '.' are skipped). A file is a sequence of
// documents:
//   - if it has at least one line consisting of just "%" (the fortune format), those lines
//     separate documents, and an empty document (e.g. before a leading "%") is skipped;
//   - otherwise each paragraph (lines up to the next blank line) is one document.
// Line endings are normalised to "\n" and a leading UTF-8 byte-order mark is dropped;
// blank lines at the start and end of a document are removed. Invalid UTF-8 is replaced
// by U+FFFD (counted), and every document is followed by the tokenizer's end-of-document id.
//
// Output. `out` receives shard_NNNNN.tok files (docs/data-format.md) and stats.json with the
// counts below, in total and per input file. Preparation streams: it holds one document and
// one write buffer at a time, whatever the corpus size.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/shard.h"

namespace tessera::data {

struct PrepareOptions {
  std::string tokenizer = "byte";   // spec for tokenizer_create
  std::vector<std::string> inputs;  // files or directories
  std::string out;                  // directory for the shards and stats.json
  size_t shard_bytes = kDefaultShardBytes;
};

struct PrepareCounts {
  uint64_t documents = 0;              // written
  uint64_t bytes = 0;                  // UTF-8 bytes of the written documents, after repair
  uint64_t tokens = 0;                 // including one end-of-document per document
  uint64_t invalid_utf8_repaired = 0;  // runs of invalid bytes replaced by U+FFFD
  uint64_t empty_skipped = 0;          // documents with no non-blank line
};

struct PrepareFileStats {
  std::string path;
  PrepareCounts counts;
};

struct PrepareStats {
  std::string tokenizer;  // name() of the tokenizer used
  int64_t vocab_size = 0;
  size_t shards = 0;
  PrepareCounts total;
  std::vector<PrepareFileStats> files;
};

// Throws UserError for a missing or unreadable input, an output directory that already holds
// shards, or inputs without a single non-empty document.
PrepareStats prepare(const PrepareOptions& options);

}  // namespace tessera::data
