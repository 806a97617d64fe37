#include "data/hf_tokenizer.h"

#include "runtime/error.h"

namespace tessera::data {

std::unique_ptr<Tokenizer> hf_tokenizer_load(const std::string& path) {
  throw UserError("tokenizer \"hf:" + path + "\": not implemented yet");
}

}  // namespace tessera::data
