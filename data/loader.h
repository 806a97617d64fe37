// The training sample order (design decision 5: data order is global).
//
// The corpus is cut into windows of seq_len + 1 tokens, window w covering tokens
// [w*seq_len, w*seq_len + seq_len + 1): the inputs are its first seq_len tokens and the targets
// the same tokens shifted by one. Windows ignore document boundaries; the end-of-document token
// is what separates documents. The last (total_tokens - 1) % seq_len tokens are never used.
//
// Global sample k (k = step * global_batch + i) is window permute_index(k % n, n, seed, k / n)
// with n = num_windows(): every epoch visits each window exactly once, in an order that
// changes from epoch to epoch. The order is a pure function of (seed, k), computed in O(1)
// time and memory, so it does not depend on how many data-parallel ranks split a batch, and
// a resumed run continues exactly where the interrupted one stopped.
#pragma once
#include <cstdint>

#include "data/shard.h"

namespace tessera::data {

// A keyed bijection of [0, n): image of `index` (< n) in the permutation for (seed, epoch).
// An 8-round Feistel network over [0, 2^ceil(log2 n)) whose round keys come from
// Philox(seed, epoch), restricted to [0, n) by cycle walking (re-applying it until the value
// lands below n; fewer than two applications on average since 2^bits < 2n).
uint64_t permute_index(uint64_t index, uint64_t n, uint64_t seed, uint64_t epoch);

class Loader {
 public:
  // `shards` must outlive the loader. Throws UserError when seq_len < 1 or the corpus is
  // shorter than one window (seq_len + 1 tokens).
  Loader(const ShardSet& shards, int64_t seq_len, uint64_t seed);

  int64_t seq_len() const { return seq_len_; }
  uint64_t seed() const { return seed_; }
  int64_t num_windows() const { return num_windows_; }
  int64_t epoch_of(int64_t k) const { return k / num_windows_; }
  // The window that global sample k reads.
  int64_t window_of(int64_t k) const;

  // inputs[0, seq_len) = window[0, seq_len), targets[0, seq_len) = window[1, seq_len + 1).
  void sample(int64_t k, int32_t* inputs, int32_t* targets) const;
  // Samples step*global_batch + first ... + first + count - 1, row-major (count, seq_len),
  // so a data-parallel rank reads exactly its own slice of the global batch.
  void batch(int64_t step, int64_t global_batch, int64_t first, int64_t count, int32_t* inputs,
             int32_t* targets) const;
  // Samples first_sample ... first_sample + count - 1, row-major (count, seq_len).
  void samples(int64_t first_sample, int64_t count, int32_t* inputs, int32_t* targets) const;

 private:
  const ShardSet& shards_;
  int64_t seq_len_;
  uint64_t seed_;
  int64_t num_windows_;
};

}  // namespace tessera::data
