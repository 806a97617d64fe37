#include "data/tokenizer.h"

#include "data/hf_tokenizer.h"
#include "data/sentencepiece_tokenizer.h"
#include "runtime/error.h"

namespace tessera::data {
namespace {

constexpr const char* kKnownSpecs = "\"byte\", \"sentencepiece:MODEL_PATH\", \"hf:TOKENIZER_JSON_PATH\"";

class ByteTokenizer final : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int32_t> ids(text.size());
    for (size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
    return ids;
  }

  std::string decode(const int32_t* ids, size_t count) const override {
    std::string text;
    text.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      TS_ASSERT(ids[i] >= 0 && ids[i] <= kEod, "byte tokenizer: id out of range");
      if (ids[i] != kEod) text.push_back(static_cast<char>(ids[i]));
    }
    return text;
  }

  int32_t vocab_size() const override { return kEod + 1; }
  int32_t eod_id() const override { return kEod; }
  std::string name() const override { return "byte"; }

 private:
  static constexpr int32_t kEod = 256;
};

// Length of the well-formed UTF-8 sequence starting at s[i], or 0 if none starts there.
// Follows Table 3-7 of the Unicode Standard, which rules out overlongs and surrogates by
// narrowing the range of the second byte.
size_t utf8_sequence_length(std::string_view s, size_t i) {
  const auto byte = [&](size_t j) { return static_cast<unsigned char>(s[j]); };
  const unsigned char b0 = byte(i);
  if (b0 < 0x80) return 1;
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;  // overlong
    if (b0 == 0xED) hi = 0x9F;  // surrogates U+D800..U+DFFF
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;  // overlong
    if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t j = 2; j < len; ++j)
    if (byte(i + j) < 0x80 || byte(i + j) > 0xBF) return 0;
  return len;
}

}  // namespace

std::unique_ptr<Tokenizer> tokenizer_create(const std::string& spec) {
  if (spec == "byte") return std::make_unique<ByteTokenizer>();
  if (spec.starts_with("sentencepiece:") && spec.size() > 14)
    return sentencepiece_tokenizer_load(spec.substr(14));
  if (spec.starts_with("hf:") && spec.size() > 3) return hf_tokenizer_load(spec.substr(3));
  throw UserError("unknown tokenizer \"" + spec + "\"; known: " + kKnownSpecs);
}

size_t utf8_repair(std::string_view in, std::string& out) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
  out.clear();
  out.reserve(in.size());
  size_t replaced = 0;
  bool in_bad_run = false;
  size_t i = 0;
  while (i < in.size()) {
    const size_t len = utf8_sequence_length(in, i);
    if (len == 0) {
      if (!in_bad_run) {
        out.append(kReplacement);
        ++replaced;
        in_bad_run = true;
      }
      ++i;
      continue;
    }
    out.append(in.substr(i, len));
    in_bad_run = false;
    i += len;
  }
  return replaced;
}

}  // namespace tessera::data
