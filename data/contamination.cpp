#include "data/contamination.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <bit>
#include <iterator>

#include "runtime/error.h"

namespace tessera::data {
namespace {

// ---- Words -------------------------------------------------------------------------------

// Unicode 14 simple lowercase mapping as runs: code points first, first + stride, ... <= last
// map to themselves + delta. Generated from Python 3.11's unicodedata (str.lower of each code
// point; U+0130 -> U+0069, its simple mapping) and checked against it code point by code point.
struct LowerRun {
  char32_t first, last;
  int stride, delta;
};
// clang-format off
constexpr LowerRun kLowerRuns[] = {
  {0x0041, 0x005A, 1, 32}, {0x00C0, 0x00D6, 1, 32}, {0x00D8, 0x00DE, 1, 32},
  {0x0100, 0x012E, 2, 1}, {0x0130, 0x0130, 1, -199}, {0x0132, 0x0136, 2, 1},
  {0x0139, 0x0147, 2, 1}, {0x014A, 0x0176, 2, 1}, {0x0178, 0x0178, 1, -121},
  {0x0179, 0x017D, 2, 1}, {0x0181, 0x0181, 1, 210}, {0x0182, 0x0184, 2, 1},
  {0x0186, 0x0186, 1, 206}, {0x0187, 0x0187, 1, 1}, {0x0189, 0x018A, 1, 205},
  {0x018B, 0x018B, 1, 1}, {0x018E, 0x018E, 1, 79}, {0x018F, 0x018F, 1, 202},
  {0x0190, 0x0190, 1, 203}, {0x0191, 0x0191, 1, 1}, {0x0193, 0x0193, 1, 205},
  {0x0194, 0x0194, 1, 207}, {0x0196, 0x0196, 1, 211}, {0x0197, 0x0197, 1, 209},
  {0x0198, 0x0198, 1, 1}, {0x019C, 0x019C, 1, 211}, {0x019D, 0x019D, 1, 213},
  {0x019F, 0x019F, 1, 214}, {0x01A0, 0x01A4, 2, 1}, {0x01A6, 0x01A6, 1, 218},
  {0x01A7, 0x01A7, 1, 1}, {0x01A9, 0x01A9, 1, 218}, {0x01AC, 0x01AC, 1, 1},
  {0x01AE, 0x01AE, 1, 218}, {0x01AF, 0x01AF, 1, 1}, {0x01B1, 0x01B2, 1, 217},
  {0x01B3, 0x01B5, 2, 1}, {0x01B7, 0x01B7, 1, 219}, {0x01B8, 0x01B8, 1, 1}, {0x01BC, 0x01BC, 1, 1},
  {0x01C4, 0x01C4, 1, 2}, {0x01C5, 0x01C5, 1, 1}, {0x01C7, 0x01C7, 1, 2}, {0x01C8, 0x01C8, 1, 1},
  {0x01CA, 0x01CA, 1, 2}, {0x01CB, 0x01DB, 2, 1}, {0x01DE, 0x01EE, 2, 1}, {0x01F1, 0x01F1, 1, 2},
  {0x01F2, 0x01F4, 2, 1}, {0x01F6, 0x01F6, 1, -97}, {0x01F7, 0x01F7, 1, -56},
  {0x01F8, 0x021E, 2, 1}, {0x0220, 0x0220, 1, -130}, {0x0222, 0x0232, 2, 1},
  {0x023A, 0x023A, 1, 10795}, {0x023B, 0x023B, 1, 1}, {0x023D, 0x023D, 1, -163},
  {0x023E, 0x023E, 1, 10792}, {0x0241, 0x0241, 1, 1}, {0x0243, 0x0243, 1, -195},
  {0x0244, 0x0244, 1, 69}, {0x0245, 0x0245, 1, 71}, {0x0246, 0x024E, 2, 1}, {0x0370, 0x0372, 2, 1},
  {0x0376, 0x0376, 1, 1}, {0x037F, 0x037F, 1, 116}, {0x0386, 0x0386, 1, 38},
  {0x0388, 0x038A, 1, 37}, {0x038C, 0x038C, 1, 64}, {0x038E, 0x038F, 1, 63},
  {0x0391, 0x03A1, 1, 32}, {0x03A3, 0x03AB, 1, 32}, {0x03CF, 0x03CF, 1, 8}, {0x03D8, 0x03EE, 2, 1},
  {0x03F4, 0x03F4, 1, -60}, {0x03F7, 0x03F7, 1, 1}, {0x03F9, 0x03F9, 1, -7},
  {0x03FA, 0x03FA, 1, 1}, {0x03FD, 0x03FF, 1, -130}, {0x0400, 0x040F, 1, 80},
  {0x0410, 0x042F, 1, 32}, {0x0460, 0x0480, 2, 1}, {0x048A, 0x04BE, 2, 1}, {0x04C0, 0x04C0, 1, 15},
  {0x04C1, 0x04CD, 2, 1}, {0x04D0, 0x052E, 2, 1}, {0x0531, 0x0556, 1, 48},
  {0x10A0, 0x10C5, 1, 7264}, {0x10C7, 0x10C7, 1, 7264}, {0x10CD, 0x10CD, 1, 7264},
  {0x13A0, 0x13EF, 1, 38864}, {0x13F0, 0x13F5, 1, 8}, {0x1C90, 0x1CBA, 1, -3008},
  {0x1CBD, 0x1CBF, 1, -3008}, {0x1E00, 0x1E94, 2, 1}, {0x1E9E, 0x1E9E, 1, -7615},
  {0x1EA0, 0x1EFE, 2, 1}, {0x1F08, 0x1F0F, 1, -8}, {0x1F18, 0x1F1D, 1, -8},
  {0x1F28, 0x1F2F, 1, -8}, {0x1F38, 0x1F3F, 1, -8}, {0x1F48, 0x1F4D, 1, -8},
  {0x1F59, 0x1F5F, 2, -8}, {0x1F68, 0x1F6F, 1, -8}, {0x1F88, 0x1F8F, 1, -8},
  {0x1F98, 0x1F9F, 1, -8}, {0x1FA8, 0x1FAF, 1, -8}, {0x1FB8, 0x1FB9, 1, -8},
  {0x1FBA, 0x1FBB, 1, -74}, {0x1FBC, 0x1FBC, 1, -9}, {0x1FC8, 0x1FCB, 1, -86},
  {0x1FCC, 0x1FCC, 1, -9}, {0x1FD8, 0x1FD9, 1, -8}, {0x1FDA, 0x1FDB, 1, -100},
  {0x1FE8, 0x1FE9, 1, -8}, {0x1FEA, 0x1FEB, 1, -112}, {0x1FEC, 0x1FEC, 1, -7},
  {0x1FF8, 0x1FF9, 1, -128}, {0x1FFA, 0x1FFB, 1, -126}, {0x1FFC, 0x1FFC, 1, -9},
  {0x2126, 0x2126, 1, -7517}, {0x212A, 0x212A, 1, -8383}, {0x212B, 0x212B, 1, -8262},
  {0x2132, 0x2132, 1, 28}, {0x2160, 0x216F, 1, 16}, {0x2183, 0x2183, 1, 1},
  {0x24B6, 0x24CF, 1, 26}, {0x2C00, 0x2C2F, 1, 48}, {0x2C60, 0x2C60, 1, 1},
  {0x2C62, 0x2C62, 1, -10743}, {0x2C63, 0x2C63, 1, -3814}, {0x2C64, 0x2C64, 1, -10727},
  {0x2C67, 0x2C6B, 2, 1}, {0x2C6D, 0x2C6D, 1, -10780}, {0x2C6E, 0x2C6E, 1, -10749},
  {0x2C6F, 0x2C6F, 1, -10783}, {0x2C70, 0x2C70, 1, -10782}, {0x2C72, 0x2C72, 1, 1},
  {0x2C75, 0x2C75, 1, 1}, {0x2C7E, 0x2C7F, 1, -10815}, {0x2C80, 0x2CE2, 2, 1},
  {0x2CEB, 0x2CED, 2, 1}, {0x2CF2, 0x2CF2, 1, 1}, {0xA640, 0xA66C, 2, 1}, {0xA680, 0xA69A, 2, 1},
  {0xA722, 0xA72E, 2, 1}, {0xA732, 0xA76E, 2, 1}, {0xA779, 0xA77B, 2, 1},
  {0xA77D, 0xA77D, 1, -35332}, {0xA77E, 0xA786, 2, 1}, {0xA78B, 0xA78B, 1, 1},
  {0xA78D, 0xA78D, 1, -42280}, {0xA790, 0xA792, 2, 1}, {0xA796, 0xA7A8, 2, 1},
  {0xA7AA, 0xA7AA, 1, -42308}, {0xA7AB, 0xA7AB, 1, -42319}, {0xA7AC, 0xA7AC, 1, -42315},
  {0xA7AD, 0xA7AD, 1, -42305}, {0xA7AE, 0xA7AE, 1, -42308}, {0xA7B0, 0xA7B0, 1, -42258},
  {0xA7B1, 0xA7B1, 1, -42282}, {0xA7B2, 0xA7B2, 1, -42261}, {0xA7B3, 0xA7B3, 1, 928},
  {0xA7B4, 0xA7C2, 2, 1}, {0xA7C4, 0xA7C4, 1, -48}, {0xA7C5, 0xA7C5, 1, -42307},
  {0xA7C6, 0xA7C6, 1, -35384}, {0xA7C7, 0xA7C9, 2, 1}, {0xA7D0, 0xA7D0, 1, 1},
  {0xA7D6, 0xA7D8, 2, 1}, {0xA7F5, 0xA7F5, 1, 1}, {0xFF21, 0xFF3A, 1, 32},
  {0x10400, 0x10427, 1, 40}, {0x104B0, 0x104D3, 1, 40}, {0x10570, 0x1057A, 1, 39},
  {0x1057C, 0x1058A, 1, 39}, {0x1058C, 0x10592, 1, 39}, {0x10594, 0x10595, 1, 39},
  {0x10C80, 0x10CB2, 1, 64}, {0x118A0, 0x118BF, 1, 32}, {0x16E40, 0x16E5F, 1, 32},
  {0x1E900, 0x1E921, 1, 34},
};
// clang-format on

char32_t lowercase(char32_t c) {
  if (c < 0x80) return c + 32;     // only called for code points that have a lowercase form
  if (c == 0x03C2) return 0x03C3;  // final sigma
  const auto* run = std::upper_bound(std::begin(kLowerRuns), std::end(kLowerRuns), c,
                                     [](char32_t v, const LowerRun& r) { return v < r.first; });
  if (run == std::begin(kLowerRuns)) return c;
  --run;
  if (c > run->last || (c - run->first) % run->stride != 0) return c;
  return static_cast<char32_t>(static_cast<int64_t>(c) + run->delta);
}

enum CharClass : uint8_t {
  kSeparator = 0,  // ends a word
  kWordChar = 1,   // part of a word
  kOwnWord = 2,    // a word by itself (scripts without spaces)
  kIgnored = 3,    // skipped (format characters)
  kClassMask = 3,
  kHasLower = 4,  // flag: lowercase(c) != c
};

void utf8_append(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

// Decodes the code point at s (n > 0 bytes left); returns its length. A byte that does not
// start a well-formed sequence decodes to U+FFFD (a separator) with length 1.
size_t utf8_decode(const unsigned char* s, size_t n, char32_t& c) {
  const unsigned char b = s[0];
  size_t len;
  char32_t min;
  if (b < 0x80) {
    c = b;
    return 1;
  } else if (b >= 0xC2 && b <= 0xDF) {
    len = 2, c = b & 0x1F, min = 0x80;
  } else if (b >= 0xE0 && b <= 0xEF) {
    len = 3, c = b & 0x0F, min = 0x800;
  } else if (b >= 0xF0 && b <= 0xF4) {
    len = 4, c = b & 0x07, min = 0x10000;
  } else {
    c = 0xFFFD;
    return 1;
  }
  if (len > n) len = n + 1;  // truncated: fails below
  for (size_t k = 1; k < len; ++k) {
    if (k >= n || (s[k] & 0xC0) != 0x80) {
      c = 0xFFFD;
      return 1;
    }
    c = (c << 6) | (s[k] & 0x3F);
  }
  if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
    c = 0xFFFD;
    return 1;
  }
  return len;
}

// The class of every code point, built once from PCRE2's Unicode tables: each pattern is run
// over one string holding every Unicode scalar value in order, so a match is a run of
// consecutive code points of the class (a few thousand matches in all, ~0.1 s).
class CharTable {
 public:
  CharTable() : classes_(0x110000, kSeparator) {
    std::string all;
    all.reserve(4 << 20);
    for (char32_t c = 1; c < 0x110000; ++c)
      if (c < 0xD800 || c > 0xDFFF) utf8_append(all, c);
    mark(all, "[\\p{L}\\p{N}\\p{M}]+", [](uint8_t& cls) { cls = kWordChar; });
    mark(all,
         "[\\p{Han}\\p{Hiragana}\\p{Katakana}\\p{Bopomofo}\\p{Thai}\\p{Lao}\\p{Khmer}"
         "\\p{Myanmar}]+",
         [](uint8_t& cls) {
           if (cls == kWordChar) cls = kOwnWord;
         });
    mark(all, "\\p{Cf}+", [](uint8_t& cls) { cls = kIgnored; });
    for (const LowerRun& run : kLowerRuns)
      for (char32_t c = run.first; c <= run.last; c += run.stride)
        if ((classes_[c] & kClassMask) != kSeparator) classes_[c] |= kHasLower;
    classes_[0x03C2] |= kHasLower;
  }
  uint8_t operator[](char32_t c) const { return classes_[c]; }

 private:
  template <typename F>
  void mark(const std::string& subject, const char* pattern, F&& apply) {
    int error = 0;
    PCRE2_SIZE error_offset = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED,
                                     PCRE2_UTF, &error, &error_offset, nullptr);
    TS_ASSERT(code, "cannot compile a word-class pattern");
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // optional: the interpreter also works
    pcre2_match_data* match = pcre2_match_data_create_from_pattern(code, nullptr);
    const auto* s = reinterpret_cast<const unsigned char*>(subject.data());
    for (PCRE2_SIZE offset = 0; offset < subject.size();) {
      const int rc =
          pcre2_match(code, s, subject.size(), offset, PCRE2_NO_UTF_CHECK, match, nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      TS_ASSERT(rc > 0, "word-class pattern failed to match");
      const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match);
      for (size_t i = ovector[0]; i < ovector[1];) {
        char32_t c;
        i += utf8_decode(s + i, subject.size() - i, c);
        apply(classes_[c]);
      }
      offset = ovector[1];
    }
    pcre2_match_data_free(match);
    pcre2_code_free(code);
  }

  std::vector<uint8_t> classes_;
};

const CharTable& char_table() {
  static const CharTable table;
  return table;
}

// Walks the normalised words of `text`: on_char(c) for each (lowercased) code point of a word,
// then on_end(begin, end) with the word's byte range in `text`.
template <typename OnChar, typename OnEnd>
void words_walk(std::string_view text, OnChar&& on_char, OnEnd&& on_end) {
  const CharTable& table = char_table();
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t begin = 0, end = 0;
  bool in_word = false;
  for (size_t i = 0; i < n;) {
    char32_t c;
    const size_t len = utf8_decode(s + i, n - i, c);
    if (c >= 0xFF01 && c <= 0xFF5E) c -= 0xFEE0;  // fullwidth forms -> ASCII
    const uint8_t cls = table[c];
    if ((cls & kClassMask) == kWordChar) {
      if (!in_word) begin = i;
      in_word = true;
      on_char((cls & kHasLower) ? lowercase(c) : c);
      end = i + len;
    } else if ((cls & kClassMask) != kIgnored) {
      if (in_word) on_end(begin, end);
      in_word = false;
      if ((cls & kClassMask) == kOwnWord) {
        on_char((cls & kHasLower) ? lowercase(c) : c);
        on_end(i, i + len);
      }
    }
    i += len;
  }
  if (in_word) on_end(begin, end);
}

// splitmix64's finaliser: spreads every input bit over the output.
uint64_t mix64(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

constexpr uint64_t kFnvOffset = 0xCBF29CE484222325ull, kFnvPrime = 0x100000001B3ull;
constexpr uint64_t kBase = 0x9E3779B97F4A7C15ull;  // odd, so powers never vanish mod 2^64

}  // namespace

std::vector<std::pair<size_t, size_t>> word_spans(std::string_view text) {
  std::vector<std::pair<size_t, size_t>> spans;
  words_walk(
      text, [](char32_t) {}, [&](size_t b, size_t e) { spans.emplace_back(b, e); });
  return spans;
}

std::vector<std::string> normalized_words(std::string_view text) {
  std::vector<std::string> words;
  std::string word;
  words_walk(
      text, [&](char32_t c) { utf8_append(word, c); },
      [&](size_t, size_t) {
        words.push_back(word);
        word.clear();
      });
  return words;
}

void word_hashes(std::string_view text, std::vector<uint64_t>& out) {
  out.clear();
  uint64_t h = kFnvOffset;
  words_walk(
      text, [&](char32_t c) { h = (h ^ c) * kFnvPrime; },
      [&](size_t, size_t) {
        out.push_back(mix64(h));
        h = kFnvOffset;
      });
}

// ---- NgramIndex ----------------------------------------------------------------------------
//
// The hash of words [p, p + k) is mix64(P[p + k] - P[p] * B^k + k), with the polynomial
// prefixes P[0] = 0, P[i + 1] = P[i] * B + word[i] (mod 2^64): any run's hash costs O(1), so
// the short documents' lengths cost one lookup each per position, not k word reads.

namespace {

void prefix_hashes(const std::vector<uint64_t>& words, std::vector<uint64_t>& prefix) {
  prefix.resize(words.size() + 1);
  prefix[0] = 0;
  for (size_t i = 0; i < words.size(); ++i) prefix[i + 1] = prefix[i] * kBase + words[i];
}

uint64_t run_hash(const std::vector<uint64_t>& prefix, const std::vector<uint64_t>& powers,
                  uint64_t p, uint64_t k) {
  const uint64_t h = mix64(prefix[p + k] - prefix[p] * powers[k] + k);
  return h ? h : 1;  // 0 marks an empty table slot
}

}  // namespace

NgramIndex::NgramIndex(int n) : n_(n) {
  if (n < 1) throw UserError("n-gram length must be at least 1, got " + std::to_string(n));
}

uint64_t NgramIndex::document_ngrams(uint32_t doc) const {
  const uint64_t words = document_words(doc);
  return words >= static_cast<uint64_t>(n_) ? words - n_ + 1 : words > 0 ? 1 : 0;
}

uint32_t NgramIndex::add(std::string_view text) {
  TS_ASSERT(!finished_, "NgramIndex::add after finish");
  TS_ASSERT(doc_words_.size() < UINT32_MAX, "too many documents for an NgramIndex");
  std::vector<uint64_t> words;
  word_hashes(text, words);
  TS_ASSERT(words.size() < UINT32_MAX, "document too long for an NgramIndex");
  words_.insert(words_.end(), words.begin(), words.end());
  doc_words_.push_back(words_.size());
  return static_cast<uint32_t>(doc_words_.size() - 2);
}

void NgramIndex::finish() {
  TS_ASSERT(!finished_, "NgramIndex::finish twice");
  finished_ = true;
  powers_.resize(n_ + 1);
  powers_[0] = 1;
  for (int k = 1; k <= n_; ++k) powers_[k] = powers_[k - 1] * kBase;
  std::vector<Entry> long_entries, short_entries;
  std::vector<uint64_t> words, prefix;
  for (uint32_t d = 0; d < document_count(); ++d) {
    words.assign(words_.begin() + doc_words_[d], words_.begin() + doc_words_[d + 1]);
    prefix_hashes(words, prefix);
    const uint64_t count = document_ngrams(d);
    if (words.size() >= static_cast<size_t>(n_)) {
      for (uint64_t g = 0; g < count; ++g)
        long_entries.push_back({run_hash(prefix, powers_, g, n_), d, static_cast<uint32_t>(g)});
    } else if (!words.empty()) {
      short_entries.push_back({run_hash(prefix, powers_, 0, words.size()), d, 0});
      short_lengths_.push_back(static_cast<uint32_t>(words.size()));
    }
  }
  std::sort(short_lengths_.begin(), short_lengths_.end());
  short_lengths_.erase(std::unique(short_lengths_.begin(), short_lengths_.end()),
                       short_lengths_.end());
  long_.build(long_entries);
  short_.build(short_entries);
}

bool NgramIndex::Entry::operator<(const Entry& o) const {
  return hash != o.hash ? hash < o.hash : doc != o.doc ? doc < o.doc : ngram < o.ngram;
}

// Postings sorted by hash, one per (hash, document): its first n-gram with that hash.
void NgramIndex::Table::build(std::vector<Entry>& entries) {
  std::sort(entries.begin(), entries.end());
  size_t distinct = 0;
  for (size_t i = 0; i < entries.size(); ++i)
    distinct += i == 0 || entries[i].hash != entries[i - 1].hash;
  slots.assign(std::max<size_t>(16, std::bit_ceil(2 * distinct)), Slot{});
  const size_t mask = slots.size() - 1;
  postings.clear();
  Slot* last = nullptr;
  for (size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    if (i > 0 && e.hash == entries[i - 1].hash && e.doc == entries[i - 1].doc) continue;
    if (i == 0 || e.hash != entries[i - 1].hash) {
      size_t s = e.hash & mask;
      while (slots[s].hash != 0) s = (s + 1) & mask;
      slots[s] = {e.hash, static_cast<uint32_t>(postings.size()), 0};
      last = &slots[s];
    }
    TS_ASSERT(postings.size() < UINT32_MAX, "too many n-grams for an NgramIndex");
    postings.push_back({e.doc, e.ngram});
    ++last->count;
  }
  std::vector<Entry>().swap(entries);
}

const NgramIndex::Slot* NgramIndex::Table::lookup(uint64_t hash) const {
  const size_t mask = slots.size() - 1;
  for (size_t s = hash & mask;; s = (s + 1) & mask) {
    if (slots[s].hash == hash) return &slots[s];
    if (slots[s].hash == 0) return nullptr;
  }
}

bool NgramIndex::verify(const Posting& p, const std::vector<uint64_t>& words, uint64_t position,
                        uint64_t length) const {
  const uint64_t* doc = words_.data() + doc_words_[p.doc] + p.ngram;
  return std::equal(doc, doc + length, words.begin() + position);
}

void NgramIndex::find(const std::vector<uint64_t>& words, bool first_only,
                      std::vector<Hit>& hits) const {
  TS_ASSERT(finished_, "NgramIndex used before finish");
  std::vector<uint64_t> prefix;
  prefix_hashes(words, prefix);
  // Scans runs of `length` words against `table`; false once first_only has its hit.
  const auto scan = [&](const Table& table, uint64_t length) {
    for (uint64_t p = 0; p + length <= words.size(); ++p) {
      const Slot* slot = table.lookup(run_hash(prefix, powers_, p, length));
      if (!slot) continue;
      for (uint32_t i = slot->begin; i < slot->begin + slot->count; ++i) {
        const Posting& posting = table.postings[i];
        if (!verify(posting, words, p, length)) continue;
        hits.push_back({posting.doc, posting.ngram, p});
        if (first_only) return false;
      }
    }
    return true;
  };
  if (!scan(long_, n_)) return;
  for (const uint32_t length : short_lengths_)
    if (!scan(short_, length)) return;
}

bool NgramIndex::matches(std::string_view text) const {
  std::vector<uint64_t> words;
  word_hashes(text, words);
  std::vector<Hit> hits;
  find(words, true, hits);
  return !hits.empty();
}

uint64_t NgramIndex::count_matches(std::string_view text) const {
  std::vector<uint64_t> words;
  word_hashes(text, words);
  std::vector<Hit> hits;
  find(words, false, hits);
  std::vector<uint64_t> positions;
  for (const Hit& hit : hits) positions.push_back(hit.position);
  std::sort(positions.begin(), positions.end());
  return std::unique(positions.begin(), positions.end()) - positions.begin();
}

NgramIndex NgramIndex::from_files(const std::vector<std::string>& inputs, int n,
                                  const DocumentOptions& options, const std::string& who) {
  NgramIndex index(n);
  for (const std::string& path : expand_inputs(inputs, who)) {
    InputRange range;
    range.path = path;
    range.compressed = is_gzip_file(path);
    range.format = detect_format(path);
    DocumentReader reader(range, options);
    Document doc;
    while (reader.next(doc)) index.add(doc.text);
  }
  index.finish();
  return index;
}

}  // namespace tessera::data
