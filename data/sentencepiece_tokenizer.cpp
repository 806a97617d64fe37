#include "data/sentencepiece_tokenizer.h"

#include "runtime/error.h"

namespace tessera::data {

std::unique_ptr<Tokenizer> sentencepiece_tokenizer_load(const std::string& path) {
  throw UserError("tokenizer \"sentencepiece:" + path + "\": not implemented yet");
}

}  // namespace tessera::data
