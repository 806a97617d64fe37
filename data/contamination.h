// Contamination: which evaluation documents share a run of n words with the training corpus.
//
// What other code calls:
//   NgramIndex::from_files(inputs, n, options, who)   the n-grams of evaluation files
//   index.matches(text), index.count_matches(text)     does a text hold any of them
//   contamination_check(train_dir, eval_inputs, options)   the report of `tessera contamination`
// prepare's --exclude-ngrams-from builds the index once and asks it about every document before
// tokenizing it (the index is immutable, so every thread may share it):
//   const NgramIndex index = NgramIndex::from_files(files, 13, document_options, "prepare");
//   if (index.matches(doc.text)) { ++counts.contaminated_removed; continue; }
//
// Words. A text is cut into normalised words, in this order:
//   1. Fullwidth forms U+FF01..U+FF5E become ASCII U+0021..U+007E (the one compatibility
//      mapping applied; there is no NFKC, so "é" and "e" + U+0301 stay different words).
//   2. A word character is a code point in \p{L}, \p{N} or \p{M} (letters, numbers, combining
//      marks), as PCRE2's Unicode tables class it (PCRE2 10.42: Unicode 14). Format characters
//      (\p{Cf}: soft hyphen, zero-width joiners, bidi marks) are skipped without ending a word.
//      Every other code point (spaces, punctuation, symbols, invalid UTF-8) ends a word.
//   3. Word characters of scripts written without spaces (\p{Han}, \p{Hiragana}, \p{Katakana},
//      \p{Bopomofo}, \p{Thai}, \p{Lao}, \p{Khmer}, \p{Myanmar}) are each a word of their own,
//      so n-grams of Chinese text are n characters.
//   4. Each word character is lowercased with Unicode 14's simple lowercase mapping (every
//      script with case: Latin, Greek, Cyrillic, Armenian, Georgian, ...), and final sigma
//      U+03C2 becomes U+03C3, so "ΟΔΟΣ" and "οδος" are the same word.
// "Don't stop—NOW!" gives {don, t, stop, now}; "中文abc" gives {中, 文, abc}. Nothing depends on
// the process locale.
//
// N-grams. An evaluation document of L words has the L - n + 1 runs of n words as n-grams;
// one of 1 <= L < n words has one, its whole word sequence (a document without words has
// none). A text matches when it holds, as consecutive words, any n-gram of the index — so a
// short evaluation document matches every text that holds its L words in a row: the rule for
// long documents with n replaced by L. Dropping short documents would hide short test items
// (questions, answers) quoted in a training page; asking for a training document equal to
// them would miss exactly those quotations. The price: a document of one or two words matches
// nearly everything, which is why the report counts the documents shorter than n. A text
// shorter than n words can still match a short document, never a long one. Each distinct
// short length costs one more hash lookup per word of a text.
//
// N-grams are found by a 64-bit hash and then compared word by word (by 64-bit word hashes),
// so a reported match is a real one unless two different words collide in 64 bits.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "data/documents.h"

namespace tessera::data {

// The normalised words of `text` (as UTF-8), by the rules above.
std::vector<std::string> normalized_words(std::string_view text);
// Their 64-bit hashes, in order (replaces `out`); equal words, equal hashes.
void word_hashes(std::string_view text, std::vector<uint64_t>& out);
// Their byte ranges [begin, end) in `text` (format characters inside a word included).
std::vector<std::pair<size_t, size_t>> word_spans(std::string_view text);

// The n-grams of a set of evaluation documents. Memory: at most ~80 bytes per evaluation word
// (its hash, one posting and a share of a half-empty hash table), whatever is matched against it.
// Built by one thread (add, then finish); afterwards immutable, and its const methods may be called
// from any number of threads.
class NgramIndex {
 public:
  explicit NgramIndex(int n);  // n >= 1, else UserError

  // Reads every document of `inputs` (files or directories, see expand_inputs; `who` prefixes
  // their errors) and returns the finished index.
  static NgramIndex from_files(const std::vector<std::string>& inputs, int n,
                               const DocumentOptions& options, const std::string& who);

  // Adds a document and returns its id (0, 1, ... in order). Only before finish().
  uint32_t add(std::string_view text);
  // Builds the lookup tables; no add() afterwards.
  void finish();

  int n() const { return n_; }
  uint32_t document_count() const { return static_cast<uint32_t>(doc_words_.size() - 1); }
  // Words and n-grams of document `doc` (n-grams: L - n + 1, 1 when 0 < L < n, 0 when L = 0).
  uint64_t document_words(uint32_t doc) const { return doc_words_[doc + 1] - doc_words_[doc]; }
  uint64_t document_ngrams(uint32_t doc) const;

  // Whether `text` holds any n-gram of the index.
  bool matches(std::string_view text) const;
  // How many word positions of `text` start an n-gram of the index.
  uint64_t count_matches(std::string_view text) const;

  // One occurrence of an index n-gram in a text: n-gram `ngram` (0-based, as counted by
  // document_ngrams) of index document `doc` equals the words at `position` of the text.
  struct Hit {
    uint32_t doc;
    uint32_t ngram;
    uint64_t position;
  };
  // Appends every hit in the text whose word hashes are `words` (see word_hashes), by position,
  // and every n-gram's hits before those of the short documents. Stops after the first hit
  // when `first_only`.
  void find(const std::vector<uint64_t>& words, bool first_only, std::vector<Hit>& hits) const;

 private:
  struct Posting {
    uint32_t doc;
    uint32_t ngram;
  };
  struct Slot {  // of an open-addressing table; hash 0 marks an empty slot
    uint64_t hash = 0;
    uint32_t begin = 0, count = 0;  // postings [begin, begin + count) have this hash
  };
  struct Entry {  // an n-gram while the index is built
    uint64_t hash;
    uint32_t doc, ngram;
    bool operator<(const Entry& other) const;
  };
  struct Table {
    std::vector<Slot> slots;  // size a power of two, at most half full
    std::vector<Posting> postings;
    void build(std::vector<Entry>& entries);  // consumes entries
    const Slot* lookup(uint64_t hash) const;
  };
  bool verify(const Posting& p, const std::vector<uint64_t>& words, uint64_t position,
              uint64_t length) const;

  int n_;
  bool finished_ = false;
  std::vector<uint64_t> words_;          // word hashes of every document, back to back
  std::vector<uint64_t> doc_words_{0};   // document d's words are [doc_words_[d], doc_words_[d+1])
  Table long_;                           // n-grams of documents with at least n words
  Table short_;                          // whole word sequences of documents with 1..n-1 words
  std::vector<uint32_t> short_lengths_;  // the lengths present in short_, ascending
  std::vector<uint64_t> powers_;         // kBase^k for k = 0..n (contamination.cpp)
};

struct ContaminationOptions {
  int n = 13;
  int threads = 0;  // training documents are scanned by this many threads; 0 = every core
  size_t top = 5;   // examples kept per evaluation file
  DocumentOptions documents;
};

// A contaminated evaluation document, for the report.
struct ContaminationExample {
  uint64_t line = 0;                // 1-based line where the document starts in its file
  uint64_t offset = 0;              // byte offset of that line
  std::string text;                 // the document, whitespace runs as one space, cut to 200 bytes
  uint64_t ngrams = 0;              // its n-grams
  uint64_t shared_ngrams = 0;       // of them, found in at least one training document
  uint64_t training_documents = 0;  // training documents holding at least one of them
  std::string shared_text;          // one shared n-gram, as the evaluation document writes it
  std::string training_shard;       // where the first (in stream order) such training
  int64_t training_document = 0;    // document is: shard path, index within the shard
};

struct ContaminationFileReport {
  std::string path;
  uint64_t documents = 0;
  uint64_t contaminated = 0;     // documents sharing at least one n-gram with the training set
  uint64_t short_documents = 0;  // documents of fewer than n words
  // The `top` worst: highest share of shared n-grams, then most shared, then file order.
  std::vector<ContaminationExample> examples;
};

struct ContaminationReport {
  int n = 0;
  std::string train_dir;
  std::string tokenizer;  // spec from stats.json
  uint64_t training_documents = 0;
  uint64_t training_tokens = 0;
  std::vector<ContaminationFileReport> files;  // one per evaluation file, in input order
};

// Scans every document of the prepared directory `train_dir` (decoded with the tokenizer its
// stats.json names) against the documents of `eval_inputs`. Memory: the evaluation texts and
// their index, plus one decoded training document per thread. A missing directory, stats.json,
// tokenizer or evaluation file is a UserError.
ContaminationReport contamination_check(const std::string& train_dir,
                                        const std::vector<std::string>& eval_inputs,
                                        const ContaminationOptions& options);

}  // namespace tessera::data
