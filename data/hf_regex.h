// Regular expressions of tokenizer.json files (Split pre-tokenizers, the byte-level GPT-2
// pattern), run with PCRE2. The `tokenizers` library compiles them with Oniguruma in its Ruby
// syntax; hf_regex_translate rewrites the constructs that mean something else to PCRE2.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace tessera::data {

// The PCRE2 pattern that matches what Oniguruma matches for `pattern`:
//   \s \S          White_Space (Oniguruma) rather than PCRE2's Z-category list (U+180E, U+0085)
//   \h \H          hex digit (Ruby), not horizontal space; \v vertical tab, not a class
//   \w             Alphabetic, marks, decimal digits, connector punctuation, ZWJ/ZWNJ
//   \p{L} \p{N}    plus the letters and numbers Unicode 15-16 added (PCRE2 10.42 knows 14);
//   \d \p{Nd}      likewise for decimal digits
//   \uHHHH         \x{HHHH}
//   [a[bc]]        nested classes are unions in Oniguruma; flattened
//   (?m)           Ruby's dot-all flag is PCRE2's (?s)
// Anchors ^ and $ are line anchors in Ruby; HfRegex compiles with PCRE2_MULTILINE to match.
// Throws UserError (prefixed by `context`) for what cannot be translated: class intersection
// (&&), negated nested classes, \W \H \S-style negations inside a class.
std::string hf_regex_translate(std::string_view pattern, const std::string& context);

// One compiled pattern (UTF, UCP, JIT when available). Matching is const and thread-safe: each
// thread matches with its own match data and JIT stack.
class HfRegex {
 public:
  // `pcre2_pattern` is in PCRE2 syntax (see hf_regex_translate); `literal` matches it as a
  // plain string. Throws UserError prefixed by `context` if it does not compile.
  HfRegex(const std::string& pcre2_pattern, bool literal, const std::string& context);
  ~HfRegex();
  HfRegex(const HfRegex&) = delete;
  HfRegex& operator=(const HfRegex&) = delete;

  // The first match in text[from..] (text must be valid UTF-8, `from` on a character
  // boundary): sets [*start, *end) and returns true, or returns false.
  bool search(std::string_view text, size_t from, size_t* start, size_t* end) const;

 private:
  void* code_;  // pcre2_code_8*, owned
  std::string context_;
};

// Calls on_match(start, end) for every match of `regex` in `text` in the order Oniguruma's
// find_iter (the onig crate) reports them: an empty match right where the previous match
// ended is skipped by stepping one character.
template <typename OnMatch>
void hf_regex_find_each(const HfRegex& regex, std::string_view text, OnMatch&& on_match) {
  size_t from = 0;
  size_t last_end = std::string_view::npos;
  while (from <= text.size()) {
    size_t start, end;
    if (!regex.search(text, from, &start, &end)) return;
    if (start == end && end == last_end) {
      if (from == text.size()) return;
      ++from;
      while (from < text.size() && (static_cast<unsigned char>(text[from]) & 0xC0) == 0x80) ++from;
      continue;
    }
    on_match(start, end);
    from = end;
    last_end = end;
  }
}

}  // namespace tessera::data
