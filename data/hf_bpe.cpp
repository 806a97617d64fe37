#include "data/hf_bpe.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>
#include <functional>

#include "runtime/error.h"

namespace tessera::data {
namespace {

bool byte_is_printable(uint32_t b) {
  return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

// Code point -> byte over the alphabet's 324 code points (-1 outside it).
struct CharBytes {
  int16_t byte_of[256 + 68];
  CharBytes() {
    std::fill(std::begin(byte_of), std::end(byte_of), int16_t{-1});
    for (uint32_t b = 0; b < 256; ++b) byte_of[hf_byte_char(static_cast<uint8_t>(b))] = b;
  }
};

std::atomic<uint64_t> next_instance{1};

}  // namespace

// One thread's cache of merged words for one HfBpe (the last one it used), and the scratch of
// merge_word. The cache is direct-mapped, one cache line per word, so a hit costs one memory
// access: short words (most of them) and their few ids live in the slot itself.
struct HfBpeThreadState {
  struct Symbol {
    int32_t id;
    int32_t prev, next;  // neighbours in the word, -1 at the ends
    bool alive;          // false once merged into its left neighbour
  };
  struct QueuedMerge {
    uint32_t rank;
    int32_t pos;
    int32_t id;
  };
  static constexpr size_t kKeyBytes = 22;
  static constexpr size_t kIds = 8;
  struct alignas(64) Slot {
    uint64_t hash = 0;  // 0: empty
    uint8_t key_len = 0;
    uint8_t count = 0;
    char key[kKeyBytes];
    int32_t ids[kIds];
  };
  static_assert(sizeof(Slot) == 64);
  static constexpr size_t kSlots = size_t{1} << 15;  // 2 MiB

  uint64_t owner = 0;
  std::vector<Slot> slots = std::vector<Slot>(kSlots);
  std::vector<int32_t> parts;  // a word's ids before merging
  std::vector<Symbol> symbols;
  std::vector<QueuedMerge> queue;
};

namespace {

HfBpeThreadState& thread_state(uint64_t owner) {
  thread_local HfBpeThreadState state;
  if (state.owner != owner) {
    state.owner = owner;
    std::fill(state.slots.begin(), state.slots.end(), HfBpeThreadState::Slot{});
  }
  return state;
}

uint64_t word_hash(std::string_view w) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ w.size();
  size_t i = 0;
  for (; i + 8 <= w.size(); i += 8) {
    uint64_t x;
    std::memcpy(&x, w.data() + i, 8);
    h = (h ^ x) * 0xFF51AFD7ED558CCDull;
    h ^= h >> 32;
  }
  if (i < w.size()) {
    uint64_t x = 0;
    std::memcpy(&x, w.data() + i, w.size() - i);
    h = (h ^ x) * 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 29;
  }
  return h | 1;
}

}  // namespace

std::pair<uint32_t, size_t> hf_code_point_at(std::string_view s, size_t i) {
  const auto b = [&](size_t j) {
    return j < s.size() ? static_cast<uint32_t>(static_cast<unsigned char>(s[j])) : 0u;
  };
  if (b(i) < 0x80) return {b(i), 1};
  if (b(i) < 0xE0) return {(b(i) & 0x1F) << 6 | (b(i + 1) & 0x3F), 2};
  if (b(i) < 0xF0) return {(b(i) & 0x0F) << 12 | (b(i + 1) & 0x3F) << 6 | (b(i + 2) & 0x3F), 3};
  return {
      (b(i) & 0x07) << 18 | (b(i + 1) & 0x3F) << 12 | (b(i + 2) & 0x3F) << 6 | (b(i + 3) & 0x3F),
      4};
}

uint32_t hf_byte_char(uint8_t byte) {
  if (byte_is_printable(byte)) return byte;
  uint32_t n = 0;  // how many non-printable bytes come before this one
  for (uint32_t b = 0; b < byte; ++b) n += byte_is_printable(b) ? 0 : 1;
  return 256 + n;
}

bool hf_token_bytes(std::string_view token, std::string& out) {
  static const CharBytes table;
  const size_t old_size = out.size();
  for (size_t i = 0; i < token.size();) {
    const auto [cp, len] = hf_code_point_at(token, i);
    i += len;
    if (cp >= std::size(table.byte_of) || table.byte_of[cp] < 0) {
      out.resize(old_size);
      return false;
    }
    out.push_back(static_cast<char>(table.byte_of[cp]));
  }
  return true;
}

HfBpe::HfBpe(const HfBpeConfig& config, const std::string& context)
    : byte_level_(config.byte_level),
      byte_fallback_(config.byte_fallback),
      fuse_unk_(config.fuse_unk),
      ignore_merges_(config.ignore_merges),
      instance_(next_instance.fetch_add(1)) {
  std::unordered_map<std::string_view, int32_t> vocab;
  vocab.reserve(config.vocab.size());
  for (const auto& [token, id] : config.vocab) vocab.emplace(token, id);

  std::fill(std::begin(byte_ids_), std::end(byte_ids_), -1);
  std::fill(std::begin(fallback_ids_), std::end(fallback_ids_), -1);
  std::string utf8;
  for (uint32_t b = 0; b < 256 && byte_level_; ++b) {
    const uint32_t cp = hf_byte_char(static_cast<uint8_t>(b));
    utf8.clear();
    if (cp < 0x80) {
      utf8.push_back(static_cast<char>(cp));
    } else {
      utf8.push_back(static_cast<char>(0xC0 | cp >> 6));
      utf8.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    if (auto it = vocab.find(utf8); it != vocab.end()) byte_ids_[b] = it->second;
  }
  if (!byte_level_) {
    for (const auto& [token, id] : config.vocab) {
      if (!token.empty() && hf_code_point_at(token, 0).second == token.size())
        char_ids_.emplace(hf_code_point_at(token, 0).first, id);
    }
    static const char* kHex = "0123456789ABCDEF";
    for (uint32_t b = 0; b < 256; ++b) {
      // The library's format!("<{b:#04X}>"): "<0x0A>", upper-case digits.
      const std::string name = std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">";
      if (auto it = vocab.find(name); it != vocab.end()) fallback_ids_[b] = it->second;
    }
  }
  if (config.unk_token) {
    auto it = vocab.find(*config.unk_token);
    if (it == vocab.end())
      throw UserError(context + ": unk_token \"" + *config.unk_token + "\" is not in the vocab");
    unk_id_ = it->second;
  }

  const size_t slots = std::bit_ceil(std::max<size_t>(16, config.merges.size() * 2));
  merges_.assign(slots, Merge{kNoPair, 0, 0});
  merge_shift_ = 64 - std::countr_zero(slots);
  std::string joined;
  for (size_t rank = 0; rank < config.merges.size(); ++rank) {
    const auto& [left, right] = config.merges[rank];
    joined = left + right;
    for (const std::string& token : {std::cref(left), std::cref(right), std::cref(joined)}) {
      if (!vocab.contains(token))
        throw UserError(context + ": merge " + std::to_string(rank + 1) + " (\"" + left + "\" \"" +
                        right + "\") uses \"" + token + "\", which is not in the vocab");
    }
    // A pair listed twice keeps its last rank, as the library's merge map does.
    merge_insert(vocab[left], vocab[right], static_cast<uint32_t>(rank), vocab[joined]);
  }

  if (ignore_merges_) {
    std::string bytes;
    for (const auto& [token, id] : config.vocab) {
      bytes.clear();
      if (!byte_level_) {
        words_.emplace(token, id);
      } else if (hf_token_bytes(token, bytes)) {
        words_.emplace(bytes, id);
      }
    }
  }
}

const HfBpe::Merge* HfBpe::merge_find(int32_t left, int32_t right) const {
  const uint64_t pair = uint64_t(uint32_t(left)) << 32 | uint32_t(right);
  const size_t mask = merges_.size() - 1;
  for (size_t slot = (pair * 0x9E3779B97F4A7C15ull) >> merge_shift_;; slot = (slot + 1) & mask) {
    const Merge& m = merges_[slot];
    if (m.pair == pair) return &m;
    if (m.pair == kNoPair) return nullptr;
  }
}

void HfBpe::merge_insert(int32_t left, int32_t right, uint32_t rank, int32_t id) {
  const uint64_t pair = uint64_t(uint32_t(left)) << 32 | uint32_t(right);
  const size_t mask = merges_.size() - 1;
  for (size_t slot = (pair * 0x9E3779B97F4A7C15ull) >> merge_shift_;; slot = (slot + 1) & mask) {
    Merge& m = merges_[slot];
    if (m.pair == pair || m.pair == kNoPair) {
      m = Merge{pair, rank, id};
      return;
    }
  }
}

void HfBpe::encode_word(std::string_view word, std::vector<int32_t>& ids) const {
  if (word.empty()) return;
  if (byte_level_ && word.size() == 1 && byte_ids_[static_cast<unsigned char>(word[0])] >= 0) {
    ids.push_back(byte_ids_[static_cast<unsigned char>(word[0])]);
    return;
  }
  HfBpeThreadState& state = thread_state(instance_);
  const bool cacheable = word.size() <= HfBpeThreadState::kKeyBytes;
  const uint64_t hash = cacheable ? word_hash(word) : 0;
  HfBpeThreadState::Slot& slot = state.slots[(hash >> 7) & (HfBpeThreadState::kSlots - 1)];
  if (cacheable && slot.hash == hash && slot.key_len == word.size() &&
      std::memcmp(slot.key, word.data(), word.size()) == 0) {
    ids.insert(ids.end(), slot.ids, slot.ids + slot.count);
    return;
  }
  const size_t first = ids.size();
  auto whole = ignore_merges_ ? words_.find(word) : words_.end();
  if (whole != words_.end()) {
    ids.push_back(whole->second);
  } else {
    merge_word(word, ids);
  }
  const size_t count = ids.size() - first;
  if (cacheable && count <= HfBpeThreadState::kIds) {
    slot.hash = hash;
    slot.key_len = static_cast<uint8_t>(word.size());
    slot.count = static_cast<uint8_t>(count);
    std::memcpy(slot.key, word.data(), word.size());
    std::copy(ids.begin() + first, ids.end(), slot.ids);
  }
}

// The library's Word::merge_all merges, over and over, the adjacent pair of lowest rank, the
// leftmost among equals (its queue's stale-entry check can only ever accept the pair now at a
// position: a merge changes the bytes a position's pair spans, and so the token it merges to).
// Short words scan for that pair; long ones keep the library's priority queue, so that a long
// run of letters costs n log n rather than n^2.
void HfBpe::merge_word(std::string_view word, std::vector<int32_t>& ids) const {
  HfBpeThreadState& state = thread_state(instance_);
  state.parts.clear();
  if (byte_level_) {
    split_bytes(word, state.parts);
  } else {
    split_characters(word, state.parts);
  }
  if (state.parts.size() <= kScanLimit) {
    merge_scan(state, ids);
  } else {
    merge_queue(state, ids);
  }
}

// A byte-level word starts as its bytes; a run of bytes the vocab lacks becomes unk_token
// (one per byte, or one per run with fuse_unk), or nothing without one.
void HfBpe::split_bytes(std::string_view word, std::vector<int32_t>& parts) const {
  uint32_t unk_len = 0;  // bytes of a pending run of bytes the vocab lacks
  for (char c : word) {
    const int32_t id = byte_ids_[static_cast<unsigned char>(c)];
    if (id >= 0) {
      if (unk_len > 0) parts.push_back(unk_id_);
      unk_len = 0;
      parts.push_back(id);
    } else if (unk_id_ >= 0) {
      if (unk_len > 0 && !fuse_unk_) parts.push_back(unk_id_);
      unk_len = fuse_unk_ ? unk_len + 1 : 1;
    }
  }
  if (unk_len > 0) parts.push_back(unk_id_);
}

// The library's BPE::merge_word over characters: a character in the vocab is its id; else,
// with byte_fallback and every one of its bytes in the vocab, its <0xNN> byte tokens (these do
// not flush a pending unk, as in the library); else unk_token, fused with a pending one under
// fuse_unk, and the pending unk is written before the next character found in the vocab.
void HfBpe::split_characters(std::string_view word, std::vector<int32_t>& parts) const {
  bool unk_pending = false;
  for (size_t i = 0; i < word.size();) {
    const auto [cp, len] = hf_code_point_at(word, i);
    const std::string_view bytes = word.substr(i, len);
    i += len;
    if (auto it = char_ids_.find(cp); it != char_ids_.end()) {
      if (unk_pending) parts.push_back(unk_id_);
      unk_pending = false;
      parts.push_back(it->second);
      continue;
    }
    if (byte_fallback_ && std::all_of(bytes.begin(), bytes.end(), [&](char c) {
          return fallback_ids_[static_cast<unsigned char>(c)] >= 0;
        })) {
      for (char c : bytes) parts.push_back(fallback_ids_[static_cast<unsigned char>(c)]);
      continue;
    }
    if (unk_id_ < 0) continue;
    if (unk_pending && !fuse_unk_) parts.push_back(unk_id_);
    unk_pending = true;
  }
  if (unk_pending) parts.push_back(unk_id_);
}

void HfBpe::merge_scan(HfBpeThreadState& state, std::vector<int32_t>& ids) const {
  int32_t* part = state.parts.data();
  size_t n = state.parts.size();
  uint32_t rank[kScanLimit];  // rank[i]: the merge of part[i] and part[i + 1], kNoRank if none
  int32_t merged[kScanLimit];
  const auto look_up = [&](size_t i) {
    const Merge* m = merge_find(part[i], part[i + 1]);
    rank[i] = m ? m->rank : kNoRank;
    merged[i] = m ? m->id : -1;
  };
  for (size_t i = 0; i + 1 < n; ++i) look_up(i);
  while (n > 1) {
    size_t at = 0;
    for (size_t i = 1; i + 1 < n; ++i)
      if (rank[i] < rank[at]) at = i;
    if (rank[at] == kNoRank) break;
    part[at] = merged[at];
    for (size_t i = at + 1; i + 1 < n; ++i) {
      part[i] = part[i + 1];
      rank[i] = rank[i + 1];
      merged[i] = merged[i + 1];
    }
    --n;
    if (at > 0) look_up(at - 1);
    if (at + 1 < n) look_up(at);
  }
  ids.insert(ids.end(), part, part + n);
}

void HfBpe::merge_queue(HfBpeThreadState& state, std::vector<int32_t>& ids) const {
  auto& symbols = state.symbols;
  auto& queue = state.queue;
  symbols.clear();
  queue.clear();
  const int32_t n = static_cast<int32_t>(state.parts.size());
  for (int32_t i = 0; i < n; ++i)
    symbols.push_back({state.parts[i], i - 1, i + 1 < n ? i + 1 : -1, true});

  const auto later = [](const HfBpeThreadState::QueuedMerge& a,
                        const HfBpeThreadState::QueuedMerge& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  const auto push = [&](int32_t pos) {
    const Merge* m = merge_find(symbols[pos].id, symbols[symbols[pos].next].id);
    if (m == nullptr) return;
    queue.push_back({m->rank, pos, m->id});
    std::push_heap(queue.begin(), queue.end(), later);
  };
  for (int32_t pos = 0; pos + 1 < n; ++pos) push(pos);

  while (!queue.empty()) {
    std::pop_heap(queue.begin(), queue.end(), later);
    const HfBpeThreadState::QueuedMerge top = queue.back();
    queue.pop_back();
    HfBpeThreadState::Symbol& left = symbols[top.pos];
    if (!left.alive || left.next == -1) continue;
    const HfBpeThreadState::Symbol right = symbols[left.next];
    const Merge* m = merge_find(left.id, right.id);
    if (m == nullptr || m->id != top.id) continue;  // a stale entry
    symbols[left.next].alive = false;
    left.id = top.id;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0) push(left.prev);
    if (left.next >= 0) push(top.pos);
  }
  for (const auto& s : symbols)
    if (s.alive) ids.push_back(s.id);
}

}  // namespace tessera::data
