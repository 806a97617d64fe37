// Tokenizers turn UTF-8 text into token ids and back. The model only ever sees ids, so a
// tokenizer is chosen once when a corpus is prepared (its vocab size is stamped into every
// shard) and must be the same one at training and generation time.
//
// Specs understood by tokenizer_create:
//   "byte"               ids 0..255 are the bytes of the UTF-8 text, 256 is end-of-document.
//   "sentencepiece:PATH" a SentencePiece model file (data/sentencepiece_tokenizer.h).
//   "hf:PATH"            a Hugging Face byte-level BPE tokenizer.json (data/hf_tokenizer.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::data {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Ids for `text`, without end-of-document (the caller appends eod_id() where a document ends).
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // Text for `count` ids. End-of-document decodes to nothing; the result may be invalid UTF-8
  // when the ids cut a character in half (run it through utf8_repair before printing).
  virtual std::string decode(const int32_t* ids, size_t count) const = 0;
  virtual int32_t vocab_size() const = 0;
  virtual int32_t eod_id() const = 0;
  // The spec that recreates this tokenizer, e.g. "byte".
  virtual std::string name() const = 0;
};

// Throws UserError for an unknown or malformed spec, listing the known ones.
std::unique_ptr<Tokenizer> tokenizer_create(const std::string& spec);

// Copies `in` to `out` (replacing its contents) with every maximal run of bytes that is not
// well-formed UTF-8 (stray continuation bytes, truncated or overlong sequences, surrogates,
// code points above U+10FFFF) replaced by one U+FFFD. Returns the number of runs replaced.
size_t utf8_repair(std::string_view in, std::string& out);

}  // namespace tessera::data
