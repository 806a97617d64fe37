#include "data/loader.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <string>

#include "runtime/error.h"
#include "runtime/philox.h"

namespace tessera::data {
namespace {

constexpr int kFeistelRounds = 8;
// Philox stream of the loader, so its keys never coincide with those that the same seed
// derives for initialisation or dropout.
const uint64_t kLoaderStream = philox::hash_name("tessera.data.loader");

// One pass of the Feistel network on [0, 2^(high_bits + low_bits)). Each round XORs one half
// with a keyed function of the other, which is invertible whatever the half widths, so the
// network is a bijection also for an odd number of bits.
uint64_t feistel(uint64_t x, int high_bits, int low_bits, const uint64_t* round_keys) {
  const uint64_t low_mask = (uint64_t{1} << low_bits) - 1;
  const uint64_t high_mask = (uint64_t{1} << high_bits) - 1;
  uint64_t high = x >> low_bits, low = x & low_mask;
  for (int r = 0; r < kFeistelRounds; ++r) {
    if (r % 2 == 0) {
      const philox::Block b = philox::generate(round_keys[r], low, 0);
      high ^= (b.v[0] | uint64_t{b.v[1]} << 32) & high_mask;
    } else {
      const philox::Block b = philox::generate(round_keys[r], high, 0);
      low ^= (b.v[0] | uint64_t{b.v[1]} << 32) & low_mask;
    }
  }
  return high << low_bits | low;
}

}  // namespace

uint64_t permute_index(uint64_t index, uint64_t n, uint64_t seed, uint64_t epoch) {
  TS_ASSERT(index < n, "permute_index: index out of range");
  if (n == 1) return 0;
  const int bits = std::bit_width(n - 1);  // smallest power of two >= n is 2^bits
  const int low_bits = (bits + 1) / 2, high_bits = bits / 2;
  uint64_t round_keys[kFeistelRounds];
  for (int r = 0; r < kFeistelRounds; r += 2) {
    const philox::Block b = philox::generate(seed, epoch, kLoaderStream + r / 2);
    round_keys[r] = b.v[0] | uint64_t{b.v[1]} << 32;
    round_keys[r + 1] = b.v[2] | uint64_t{b.v[3]} << 32;
  }
  // Cycle walking: the orbit of index returns to index (< n), so this ends, and the first
  // value below n defines a bijection of [0, n).
  uint64_t x = index;
  do {
    x = feistel(x, high_bits, low_bits, round_keys);
  } while (x >= n);
  return x;
}

Loader::Loader(const ShardSet& shards, int64_t seq_len, uint64_t seed)
    : shards_(shards), seq_len_(seq_len), seed_(seed), num_windows_(0) {
  if (seq_len < 1)
    throw UserError("data: seq_len must be at least 1, got " + std::to_string(seq_len));
  num_windows_ = std::max<int64_t>(0, shards.total_tokens() - 1) / seq_len;
  if (num_windows_ == 0)
    throw UserError(
        "data: corpus " + shards.dir() + " has " + std::to_string(shards.total_tokens()) +
        " tokens, fewer than one window of seq_len + 1 = " + std::to_string(seq_len + 1));
}

int64_t Loader::window_of(int64_t k) const {
  TS_ASSERT(k >= 0, "sample index must be non-negative");
  const auto n = static_cast<uint64_t>(num_windows_);
  const auto u = static_cast<uint64_t>(k);
  return static_cast<int64_t>(permute_index(u % n, n, seed_, u / n));
}

void Loader::sample(int64_t k, int32_t* inputs, int32_t* targets) const {
  const int64_t start = window_of(k) * seq_len_;
  shards_.read(start, seq_len_, inputs);
  // The window's tokens 1..seq_len-1 are already in inputs; only the last one is read again.
  std::memcpy(targets, inputs + 1, sizeof(int32_t) * (seq_len_ - 1));
  shards_.read(start + seq_len_, 1, targets + seq_len_ - 1);
}

void Loader::batch(int64_t step, int64_t global_batch, int64_t first, int64_t count,
                   int32_t* inputs, int32_t* targets) const {
  TS_ASSERT(step >= 0 && global_batch > 0, "bad step or global_batch");
  TS_ASSERT(first >= 0 && count >= 0 && first + count <= global_batch,
            "batch slice outside the global batch");
  samples(step * global_batch + first, count, inputs, targets);
}

void Loader::samples(int64_t first_sample, int64_t count, int32_t* inputs, int32_t* targets) const {
  TS_ASSERT(first_sample >= 0 && count >= 0, "bad sample range");
  for (int64_t i = 0; i < count; ++i)
    sample(first_sample + i, inputs + i * seq_len_, targets + i * seq_len_);
}

}  // namespace tessera::data
