// A training mixture of several prepared corpora (design decision 5: data order is global).
//
// Each source is a directory of token shards with a name, a language and a sampling
// probability: either its weight over the sum of weights, or, with a temperature T > 0,
// p_i = n_i^(1/T) / sum_j n_j^(1/T) over the sources' token counts n_i (T = 1 samples in
// proportion to size; larger T flattens toward uniform).
//
// Sample order. The probabilities are rounded to whole slots of a block of B = 65536
// consecutive global samples (largest remainders; a source with p > 0 gets at least one slot),
// so source i owns c_i slots [C_i, C_i + c_i) of every block. Global sample k lies in block
// b = k / B at position q = k mod B; its slot is π_b(q), a keyed permutation of [0, B) (the
// loader's Feistel permutation with epoch b), which names the source i and, as
// slot - C_i, its j-th sample in this block: the source's own sample m = b * c_i + j. That
// sample reads the source the way a single corpus is read (data/loader.h), with the source's
// own seed. Every block holds exactly c_i samples of source i, in an order that changes from
// block to block; all of it is a pure function of (seed, k), O(1) per sample, so data-parallel
// ranks read only their rows and a resumed run continues exactly. A mixture of one source
// reads it exactly as the single-corpus loader would (m = k).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "data/loader.h"
#include "data/shard.h"

namespace tessera::data {

struct SourceSpec {
  std::string name;      // unique
  std::string language;  // e.g. "de"
  std::string path;      // training shards
  double weight = 0;     // used when the mixture's temperature is 0
};

class Mixture {
 public:
  static constexpr int64_t kBlock = 1 << 16;

  // Opens every source's shards. Throws UserError for a bad source (its name in the message),
  // a missing weight, or a corpus shorter than one window.
  Mixture(std::vector<SourceSpec> sources, double temperature, int64_t seq_len, uint64_t seed);

  size_t size() const { return sources_.size(); }
  const SourceSpec& source(size_t i) const { return sources_[i]; }
  const ShardSet& shards(size_t i) const { return *shards_[i]; }
  int64_t tokens(size_t i) const { return shards_[i]->total_tokens(); }
  int64_t num_windows(size_t i) const { return loaders_[i]->num_windows(); }
  // Before rounding (weights or temperature) and as sampled (slots / B).
  double target_probability(size_t i) const { return target_[i]; }
  double probability(size_t i) const { return static_cast<double>(slots_[i]) / kBlock; }
  // How many times the planned samples go through source i's windows.
  double expected_epochs(size_t i, int64_t total_samples) const;

  // (source, the source's own sample index) of global sample k.
  std::pair<size_t, int64_t> locate(int64_t k) const;
  // Samples first ... first + count - 1, row-major (count, seq_len), as Loader::samples.
  void samples(int64_t first, int64_t count, int32_t* inputs, int32_t* targets) const;

 private:
  std::vector<SourceSpec> sources_;
  std::vector<std::unique_ptr<ShardSet>> shards_;
  std::vector<std::unique_ptr<Loader>> loaders_;
  std::vector<double> target_;
  std::vector<int64_t> slots_, slot_start_;  // c_i and C_i
  uint64_t seed_;
};

// Sampling probabilities p_i from token counts and a temperature (> 0), or from weights.
std::vector<double> mixture_probabilities(const std::vector<int64_t>& tokens, double temperature);
// Whole slots out of `block` for each probability: largest remainders, ties to the lower index,
// at least one slot for every p > 0.
std::vector<int64_t> mixture_slots(const std::vector<double>& probabilities, int64_t block);

}  // namespace tessera::data
