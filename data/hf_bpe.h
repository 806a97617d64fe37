// The BPE model of a byte-level tokenizer.json, working on raw bytes. Vocabulary entries are
// written in the byte-level alphabet (each byte shown as one printable character, e.g. the
// space as "Ġ"); HfBpe maps them back to bytes once, so encoding never builds those strings.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tessera::data {

// The byte-level alphabet of GPT-2: printable bytes stand for themselves, the other 68 map to
// U+0100.. in byte order. Returns the code point standing for `byte`.
uint32_t hf_byte_char(uint8_t byte);
// The code point starting at s[i] (well-formed UTF-8) and its length in bytes.
std::pair<uint32_t, size_t> hf_code_point_at(std::string_view s, size_t i);
// Appends the bytes a byte-level token stands for to `out` and returns true, or returns false
// (leaving `out` as it was) when the token has a character outside the alphabet.
bool hf_token_bytes(std::string_view token, std::string& out);

struct HfBpeThreadState;  // per-thread cache and scratch (hf_bpe.cpp)

struct HfBpeConfig {
  std::vector<std::pair<std::string, int32_t>> vocab;       // token -> id
  std::vector<std::pair<std::string, std::string>> merges;  // highest priority first
  std::optional<std::string> unk_token;
  bool fuse_unk = false;
  // Whole words found in the vocabulary are emitted as is, before any merge (LLaMA-3).
  bool ignore_merges = false;
  // true: vocab entries are in the byte-level alphabet and a word starts as its bytes (GPT-2).
  // false: entries are plain UTF-8 and a word starts as its characters (SentencePiece-style).
  bool byte_level = true;
  // Characters-only: a character missing from the vocab is spelled with the byte tokens
  // <0x00>..<0xFF> of its UTF-8 bytes when the vocab has them all, instead of unk_token.
  bool byte_fallback = false;
};

class HfBpe {
 public:
  // Throws UserError prefixed by `context` for a merge or unk token missing from the vocab.
  HfBpe(const HfBpeConfig& config, const std::string& context);

  // Appends the ids of one pre-tokenized word (raw bytes) to `ids`. Thread-safe: the merge
  // scratch and the cache of recent words are per thread.
  void encode_word(std::string_view word, std::vector<int32_t>& ids) const;

 private:
  struct Merge {
    uint64_t pair;  // left id << 32 | right id; kNoPair marks an empty slot
    uint32_t rank;
    int32_t id;
  };
  static constexpr uint64_t kNoPair = ~uint64_t{0};
  static constexpr uint32_t kNoRank = ~uint32_t{0};
  static constexpr size_t kScanLimit = 64;  // longer words merge through a priority queue

  const Merge* merge_find(int32_t left, int32_t right) const;
  void merge_insert(int32_t left, int32_t right, uint32_t rank, int32_t id);
  void merge_word(std::string_view word, std::vector<int32_t>& ids) const;
  void merge_scan(HfBpeThreadState& state, std::vector<int32_t>& ids) const;
  void merge_queue(HfBpeThreadState& state, std::vector<int32_t>& ids) const;

  void split_bytes(std::string_view word, std::vector<int32_t>& parts) const;
  void split_characters(std::string_view word, std::vector<int32_t>& parts) const;

  int32_t byte_ids_[256];      // id of each single-byte token, -1 where the vocab has none
  int32_t fallback_ids_[256];  // id of each <0xNN> token, -1 where the vocab has none
  // Characters-only: the id of every vocab entry that is one UTF-8 character.
  std::unordered_map<uint32_t, int32_t> char_ids_;
  bool byte_level_ = true;
  bool byte_fallback_ = false;
  int32_t unk_id_ = -1;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
  std::vector<Merge> merges_;  // open addressing, power-of-two size
  uint32_t merge_shift_ = 0;
  struct WordHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  // Raw bytes -> id of every vocabulary entry, for ignore_merges.
  std::unordered_map<std::string, int32_t, WordHash, std::equal_to<>> words_;
  uint64_t instance_;  // tells one HfBpe's cached words from another's in a thread's cache
};

}  // namespace tessera::data
