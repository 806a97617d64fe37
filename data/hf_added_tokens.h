// The added tokens of a tokenizer.json (special tokens such as <|endoftext|>, and extra
// vocabulary such as GPT-NeoX's runs of spaces), cut out of the text before pre-tokenization
// exactly where the tokenizers library's AddedVocabulary cuts them.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tessera::data {

struct HfAddedToken {
  std::string content;
  std::string match;  // what is looked for: content, normalized when `normalized`
  int32_t id = -1;
  bool single_word = false;  // only where no word character touches it on either side
  bool lstrip = false;       // takes the whitespace before it
  bool rstrip = false;       // takes the whitespace after it
  bool normalized = true;    // matched in the normalized text rather than the raw text
  bool special = false;
};

class HfAddedTokens {
 public:
  HfAddedTokens() = default;
  explicit HfAddedTokens(const std::vector<HfAddedToken>& tokens);

  // Calls on_piece(piece, id) for the pieces of `text` in order: id is the token's for a
  // matched token (leftmost, then longest), -1 for the text between tokens.
  template <typename OnPiece>
  void split(std::string_view text, OnPiece&& on_piece) const {
    size_t piece_start = 0;  // end of the previous token, as stretched by rstrip
    size_t from = 0;         // where the search goes on: the previous match's own end
    Found found;
    while (find(text, from, piece_start, &found)) {
      if (piece_start < found.start)
        on_piece(text.substr(piece_start, found.start - piece_start), int32_t{-1});
      on_piece(text.substr(found.start, found.stop - found.start), found.id);
      piece_start = found.stop;
      from = found.resume;
    }
    if (piece_start < text.size()) on_piece(text.substr(piece_start), int32_t{-1});
  }

 private:
  struct Found {
    size_t start, stop;  // the token with the whitespace lstrip/rstrip take
    size_t resume;       // end of the match itself
    int32_t id;
  };
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> next;  // sorted by byte
    int32_t token = -1;                                   // index into tokens_
  };

  bool find(std::string_view text, size_t from, size_t piece_start, Found* found) const;

  std::vector<HfAddedToken> tokens_;
  std::vector<Node> nodes_;  // a trie over the tokens' `match` bytes; nodes_[0] is the root
  std::array<int32_t, 256> root_next_{};  // the root's children by first byte, -1 for none
};

}  // namespace tessera::data
