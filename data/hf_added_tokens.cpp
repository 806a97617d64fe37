#include "data/hf_added_tokens.h"

#include <algorithm>

#include "data/hf_bpe.h"
#include "data/hf_regex.h"

namespace tessera::data {
namespace {

// Rust's regex \s (White_Space), which the library uses for lstrip and rstrip.
bool is_white_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

size_t previous_boundary(std::string_view s, size_t i) {
  do --i;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80);
  return i;
}

// Whether the character at s[i] is a word character in Rust's regex sense (\w: Alphabetic,
// marks, decimal digits, connector punctuation, join controls), for single_word.
bool is_word_char_at(std::string_view s, size_t i) {
  static const HfRegex word(hf_regex_translate(R"(\A\w)", "added tokens"), false, "added tokens");
  size_t start, end;
  return word.search(s.substr(i, hf_code_point_at(s, i).second), 0, &start, &end);
}

}  // namespace

HfAddedTokens::HfAddedTokens(const std::vector<HfAddedToken>& tokens) : tokens_(tokens) {
  root_next_.fill(-1);
  nodes_.emplace_back();
  for (size_t t = 0; t < tokens_.size(); ++t) {
    int32_t node = 0;
    for (unsigned char c : tokens_[t].match) {
      auto& next = nodes_[node].next;
      auto it = std::lower_bound(next.begin(), next.end(), std::make_pair(c, int32_t{-1}));
      if (it != next.end() && it->first == c) {
        node = it->second;
        continue;
      }
      const int32_t child = static_cast<int32_t>(nodes_.size());
      next.insert(it, {c, child});
      if (node == 0) root_next_[c] = child;
      nodes_.emplace_back();
      node = child;
    }
    if (node != 0) nodes_[node].token = static_cast<int32_t>(t);
  }
}

// AddedVocabulary::find_matches, one match at a time.
bool HfAddedTokens::find(std::string_view text, size_t from, size_t piece_start,
                         Found* found) const {
  if (tokens_.empty()) return false;
  while (from < text.size()) {
    // The leftmost match, then the longest one starting there.
    size_t start = from, end = 0;
    int32_t token = -1;
    for (; start < text.size() && token < 0; ++start) {
      int32_t node = root_next_[static_cast<unsigned char>(text[start])];
      for (size_t j = start + 1; node >= 0; ++j) {
        if (nodes_[node].token >= 0) token = nodes_[node].token, end = j;
        if (j == text.size()) break;
        const auto& next = nodes_[node].next;
        const unsigned char c = static_cast<unsigned char>(text[j]);
        auto it = std::lower_bound(next.begin(), next.end(), std::make_pair(c, int32_t{-1}));
        node = (it != next.end() && it->first == c) ? it->second : -1;
      }
    }
    if (token < 0) return false;
    --start;
    from = end;
    const HfAddedToken& t = tokens_[token];
    if (t.single_word) {
      const bool word_before = start > 0 && is_word_char_at(text, previous_boundary(text, start));
      const bool word_after = end < text.size() && is_word_char_at(text, end);
      if (word_before || word_after) continue;
    }
    size_t stop = end;
    if (t.lstrip) {
      size_t left = start;
      while (left > 0) {
        const size_t prev = previous_boundary(text, left);
        if (!is_white_space(hf_code_point_at(text, prev).first)) break;
        left = prev;
      }
      start = std::max(left, piece_start);
    }
    if (t.rstrip) {
      while (stop < text.size()) {
        const auto [cp, len] = hf_code_point_at(text, stop);
        if (!is_white_space(cp)) break;
        stop += len;
      }
    }
    *found = Found{start, stop, end, t.id};
    return true;
  }
  return false;
}

}  // namespace tessera::data
