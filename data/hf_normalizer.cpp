#include "data/hf_normalizer.h"

#include <unicode/bytestream.h>
#include <unicode/stringpiece.h>
#include <unicode/uchar.h>

#include <algorithm>

#include "data/hf_bpe.h"
#include "runtime/error.h"

namespace tessera::data {
namespace {

// The tokenizers library normalizes with the unicode-normalization-alignments crate, whose
// tables are Unicode 9.0; ICU 72's are Unicode 15. To the library a character assigned after
// 9.0 is inert: a starter that neither decomposes nor composes, and that nothing is reordered
// across. ICU may decompose, compose or reorder such a character (U+1DF6, a combining mark of
// Unicode 10, say). Splitting the text at these characters, normalizing the pieces between them
// with ICU and keeping the characters as they are gives what the library gives.
std::vector<uint32_t> library_inert_characters(const icu::Normalizer2& form) {
  std::vector<uint32_t> found;
  for (UChar32 c = 0; c <= 0x10FFFF; ++c) {
    UVersionInfo age;
    u_charAge(c, age);
    if (age[0] > 9 && !form.isInert(c)) found.push_back(static_cast<uint32_t>(c));
  }
  return found;
}

// Appends the ICU normal form of `piece` to `out`; returns whether it differs from `piece`.
bool append_normalized(const icu::Normalizer2& form, std::string_view piece, std::string& out) {
  const icu::StringPiece input(piece.data(), static_cast<int32_t>(piece.size()));
  UErrorCode status = U_ZERO_ERROR;
  if (form.isNormalizedUTF8(input, status) && U_SUCCESS(status)) {
    out.append(piece);
    return false;
  }
  status = U_ZERO_ERROR;
  icu::StringByteSink<std::string> sink(&out);
  form.normalizeUTF8(0, input, sink, nullptr, status);
  TS_ASSERT(U_SUCCESS(status), std::string("ICU normalization failed: ") + u_errorName(status));
  return true;
}

}  // namespace

bool HfNormalizer::add(const std::string& type) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* form = type == "NFC"    ? icu::Normalizer2::getNFCInstance(status)
                                 : type == "NFD"  ? icu::Normalizer2::getNFDInstance(status)
                                 : type == "NFKC" ? icu::Normalizer2::getNFKCInstance(status)
                                 : type == "NFKD" ? icu::Normalizer2::getNFKDInstance(status)
                                                  : nullptr;
  if (form == nullptr) return false;
  TS_ASSERT(U_SUCCESS(status), std::string("ICU normalizer: ") + u_errorName(status));
  forms_.push_back(Form{form, library_inert_characters(*form)});
  return true;
}

void HfNormalizer::add_prepend(std::string prefix) {
  forms_.push_back(Form{nullptr, {}, "", std::move(prefix)});
}

void HfNormalizer::add_replace(std::string pattern, std::string content) {
  TS_ASSERT(!pattern.empty(), "hf normalizer: empty Replace pattern");
  forms_.push_back(Form{nullptr, {}, std::move(pattern), std::move(content)});
}

std::string_view HfNormalizer::apply(std::string_view text, std::string& buffer) const {
  std::string_view current = text;
  for (const Form& form : forms_) {
    std::string next;
    if (form.icu == nullptr) {
      if (current.empty()) continue;
      if (form.pattern.empty()) {  // Prepend
        next = form.content;
        next.append(current);
      } else {  // Replace
        size_t at = current.find(form.pattern);
        if (at == std::string_view::npos) continue;
        size_t done = 0;
        for (; at != std::string_view::npos; at = current.find(form.pattern, done)) {
          next.append(current.substr(done, at - done));
          next.append(form.content);
          done = at + form.pattern.size();
        }
        next.append(current.substr(done));
      }
      buffer = std::move(next);
      current = buffer;
      continue;
    }
    // ASCII is invariant under every normalization form.
    if (std::all_of(current.begin(), current.end(), [](char c) { return c >= 0; })) continue;
    if (!normalize(form, current, next)) continue;
    buffer = std::move(next);
    current = buffer;
  }
  return current;
}

// Writes the normal form of `text` to `out` and returns true, or returns false when `text` is
// already normal.
bool HfNormalizer::normalize(const Form& form, std::string_view text, std::string& out) {
  bool changed = false;
  size_t piece = 0;  // start of the text since the last library-inert character
  const uint32_t first_inert = form.library_inert.empty() ? ~0u : form.library_inert.front();
  for (size_t i = 0; i < text.size();) {
    const auto [cp, len] = hf_code_point_at(text, i);
    if (cp >= first_inert &&
        std::binary_search(form.library_inert.begin(), form.library_inert.end(), cp)) {
      changed |= append_normalized(*form.icu, text.substr(piece, i - piece), out);
      out.append(text.substr(i, len));
      piece = i + len;
    }
    i += len;
  }
  if (piece == 0) {
    out.clear();
    return append_normalized(*form.icu, text, out);
  }
  changed |= append_normalized(*form.icu, text.substr(piece), out);
  return changed;
}

}  // namespace tessera::data
