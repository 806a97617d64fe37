// Hugging Face BPE tokenizers read from a tokenizer.json ("hf:PATH"): byte-level (GPT-2,
// LLaMA-3) or SentencePiece-style (LLaMA-1/2, Mistral: characters, ▁, <0xNN> byte fallback).
#pragma once
#include <memory>
#include <string>

#include "data/tokenizer.h"

namespace tessera::data {

// Throws UserError naming the file for a missing, unreadable or unsupported tokenizer.json.
std::unique_ptr<Tokenizer> hf_tokenizer_load(const std::string& path);

}  // namespace tessera::data
