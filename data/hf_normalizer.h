// The normalizers of a tokenizer.json: the Unicode forms (NFC, NFD, NFKC, NFKD) through ICU,
// made to agree with the tokenizers library's own normalizer, and the Prepend and Replace
// (string pattern) of SentencePiece-style files, applied in order.
#pragma once
#include <unicode/normalizer2.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::data {

class HfNormalizer {
 public:
  // Appends a form by its tokenizer.json type ("NFC", ...); false for any other type.
  bool add(const std::string& type);
  // Prepend: puts `prefix` before every non-empty text.
  void add_prepend(std::string prefix);
  // Replace with a string pattern: every occurrence of `pattern` (non-empty), left to right
  // and not overlapping, becomes `content`.
  void add_replace(std::string pattern, std::string content);
  bool empty() const { return forms_.empty(); }

  // `text` itself when already normal, else a view of `buffer` holding its normal form.
  // Thread-safe.
  std::string_view apply(std::string_view text, std::string& buffer) const;

 private:
  struct Form {
    const icu::Normalizer2* icu;  // null: a Prepend or Replace step
    // Characters the library leaves alone and ICU does not (see hf_normalizer.cpp), sorted.
    std::vector<uint32_t> library_inert;
    std::string pattern, content;  // Replace: pattern -> content; Prepend: "" and the prefix
  };
  static bool normalize(const Form& form, std::string_view text, std::string& out);

  std::vector<Form> forms_;
};

}  // namespace tessera::data
