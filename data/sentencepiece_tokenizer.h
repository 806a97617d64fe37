// SentencePiece tokenizers ("sentencepiece:PATH") and their training.
#pragma once
#include <memory>
#include <string>

#include "data/tokenizer.h"

namespace tessera::data {

// Throws UserError naming the file for a missing or unreadable model.
std::unique_ptr<Tokenizer> sentencepiece_tokenizer_load(const std::string& path);

}  // namespace tessera::data
