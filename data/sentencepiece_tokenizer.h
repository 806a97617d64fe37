// SentencePiece tokenizers ("sentencepiece:PATH") and their training.
//
// A loaded tokenizer may be shared by many threads: encode and decode only read the model
// (SentencePieceProcessor's Encode/Decode are const and keep no per-call state in the object).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/tokenizer.h"

namespace tessera::data {

// Loads a SentencePiece .model file. Its end-of-sentence piece (</s>) is the end-of-document
// id. Throws UserError naming the file for a missing, unreadable or corrupt model, or for a
// model without an end-of-sentence piece.
std::unique_ptr<Tokenizer> sentencepiece_tokenizer_load(const std::string& path);

enum class SentencePieceModelType { bpe, unigram };

struct SentencePieceTrainOptions {
  // Text files, read through zlib (so .gz files are decompressed). Every line is a training
  // sentence; lines holding only "%" (the fortune format's document separators), empty lines
  // and lines over 4192 bytes are skipped; invalid UTF-8 is repaired as `prepare` does.
  std::vector<std::string> inputs;
  // Writes out + ".model" (what "sentencepiece:" loads) and out + ".vocab" (one "piece\tscore"
  // line per id, for reading).
  std::string out;
  SentencePieceModelType type = SentencePieceModelType::unigram;
  int32_t vocab_size = 0;
  // Share of the characters (by frequency) that get their own piece; the rest are spelled
  // with byte pieces. 0.9995 keeps rare CJK characters out of the vocabulary.
  double character_coverage = 0.9995;
  // The trainer keeps at most this many sentences in memory, a uniform sample of the input.
  uint64_t max_sentences = 2'000'000;
  int threads = 0;  // 0: every core
};

struct SentencePieceTrainStats {
  uint64_t sentences_read = 0;      // non-empty lines seen in the inputs
  uint64_t sentences_too_long = 0;  // lines left out for their length (not in sentences_read)
  uint64_t sentences_used = 0;      // those the trainer kept (at most max_sentences)
  int32_t vocab_size = 0;
  std::string model_path, vocab_path;
};

// Trains with byte fallback, no text normalization and the pieces <unk> = 0, <s> = 1,
// </s> = 2 (no padding piece). The same inputs and options (thread count included: unigram
// sums its statistics per thread) give the same model. Throws
// UserError for unreadable inputs, bad options, or what SentencePiece rejects (e.g. a
// vocabulary larger than the data supports). The output files appear whole or not at all.
SentencePieceTrainStats sentencepiece_train(const SentencePieceTrainOptions& options);

}  // namespace tessera::data
