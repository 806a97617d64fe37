// The decoders of a SentencePiece-style tokenizer.json (LLaMA-1/2, Mistral): a chain of steps
// over the tokens' strings, each step the tokenizers library's decode_chain, the results
// joined at the end. Byte-level files decode through hf_tokenizer.cpp's byte table instead.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tessera::data {

struct HfDecoderStep {
  enum class Kind {
    kReplace,       // every occurrence of `pattern` in a token becomes `content`
    kByteFallback,  // runs of <0xNN> tokens become their bytes (one U+FFFD per byte if invalid)
    kFuse,          // all tokens become one
    kStrip,         // up to `start` leading and `stop` trailing `strip_char`s leave each token
    kMetaspace,     // `pattern` (the replacement) becomes a space; dropped in the first token
                    // when `prepend` (prepend_scheme not "never")
  };
  Kind kind = Kind::kFuse;
  std::string pattern, content;
  uint32_t strip_char = ' ';
  size_t start = 0, stop = 0;
  bool prepend = true;
};

// Runs `steps` over `tokens` in order and joins what is left.
std::string hf_decode_chain(const std::vector<HfDecoderStep>& steps,
                            std::vector<std::string> tokens);

}  // namespace tessera::data
