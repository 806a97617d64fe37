// The Unicode normalizers of a tokenizer.json (NFC, NFD, NFKC, NFKD, or a Sequence of them),
// through ICU, made to agree with the tokenizers library's own normalizer.
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
  bool empty() const { return forms_.empty(); }

  // `text` itself when already normal, else a view of `buffer` holding its normal form.
  // Thread-safe.
  std::string_view apply(std::string_view text, std::string& buffer) const;

 private:
  struct Form {
    const icu::Normalizer2* icu;
    // Characters the library leaves alone and ICU does not (see hf_normalizer.cpp), sorted.
    std::vector<uint32_t> library_inert;
  };
  static bool normalize(const Form& form, std::string_view text, std::string& out);

  std::vector<Form> forms_;
};

}  // namespace tessera::data
