#include "data/mixture.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "runtime/error.h"
#include "runtime/philox.h"

namespace tessera::data {
namespace {

const uint64_t kSlotStream = philox::hash_name("tessera.data.mixture.slots");
const uint64_t kSourceStream = philox::hash_name("tessera.data.mixture.source");

uint64_t derive_seed(uint64_t seed, uint64_t index, uint64_t stream) {
  const philox::Block b = philox::generate(seed, index, stream);
  return b.v[0] | uint64_t{b.v[1]} << 32;
}

}  // namespace

std::vector<double> mixture_probabilities(const std::vector<int64_t>& tokens, double temperature) {
  TS_ASSERT(temperature > 0, "mixture temperature must be positive");
  // n^(1/T) in logs, scaled by the largest, so large corpora and small T do not overflow.
  std::vector<double> logs(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) logs[i] = std::log(static_cast<double>(tokens[i])) / temperature;
  const double top = *std::max_element(logs.begin(), logs.end());
  std::vector<double> p(tokens.size());
  double sum = 0;
  for (size_t i = 0; i < p.size(); ++i) sum += p[i] = std::exp(logs[i] - top);
  for (double& x : p) x /= sum;
  return p;
}

std::vector<int64_t> mixture_slots(const std::vector<double>& probabilities, int64_t block) {
  const size_t n = probabilities.size();
  std::vector<int64_t> slots(n);
  std::vector<double> remainder(n);
  int64_t used = 0;
  for (size_t i = 0; i < n; ++i) {
    const double exact = probabilities[i] * static_cast<double>(block);
    slots[i] = static_cast<int64_t>(std::floor(exact));
    remainder[i] = exact - static_cast<double>(slots[i]);
    used += slots[i];
  }
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return remainder[a] > remainder[b]; });
  for (size_t r = 0; used < block; r = (r + 1) % n, ++used) ++slots[order[r]];
  // Every source that is sampled at all keeps at least one slot, taken from the largest.
  for (size_t i = 0; i < n; ++i) {
    if (probabilities[i] > 0 && slots[i] == 0) {
      ++slots[i];
      --slots[std::max_element(slots.begin(), slots.end()) - slots.begin()];
    }
  }
  return slots;
}

Mixture::Mixture(std::vector<SourceSpec> sources, double temperature, int64_t seq_len, uint64_t seed)
    : sources_(std::move(sources)), seed_(seed) {
  if (sources_.empty()) throw UserError("data: no training source");
  std::set<std::string> names;
  for (const SourceSpec& s : sources_) {
    if (!names.insert(s.name).second) throw UserError("data: two sources are named \"" + s.name + "\"");
    shards_.push_back(std::make_unique<ShardSet>(ShardSet::open(s.path)));
    if (shards_.back()->vocab_size() != shards_.front()->vocab_size())
      throw UserError("data: source \"" + s.name + "\" (" + s.path + ") has vocab_size " +
                      std::to_string(shards_.back()->vocab_size()) + ", source \"" + sources_[0].name +
                      "\" has " + std::to_string(shards_.front()->vocab_size()) +
                      " (prepare every source with the same tokenizer)");
    // One source reads as a single corpus does; several get seeds of their own.
    const uint64_t source_seed = sources_.size() == 1 ? seed : derive_seed(seed, shards_.size() - 1, kSourceStream);
    try {
      loaders_.push_back(std::make_unique<Loader>(*shards_.back(), seq_len, source_seed));
    } catch (const UserError& e) {
      throw UserError("source \"" + s.name + "\": " + e.what());
    }
  }
  if (temperature > 0) {
    std::vector<int64_t> tokens;
    for (size_t i = 0; i < size(); ++i) tokens.push_back(this->tokens(i));
    target_ = mixture_probabilities(tokens, temperature);
  } else {
    double sum = 0;
    for (const SourceSpec& s : sources_) {
      if (!(s.weight > 0) && sources_.size() > 1)
        throw UserError("data: source \"" + s.name + "\" needs a weight > 0 (or set data.temperature)");
      sum += sources_.size() > 1 ? s.weight : 1.0;
    }
    for (const SourceSpec& s : sources_) target_.push_back((sources_.size() > 1 ? s.weight : 1.0) / sum);
  }
  slots_ = mixture_slots(target_, kBlock);
  slot_start_.assign(size(), 0);
  for (size_t i = 1; i < size(); ++i) slot_start_[i] = slot_start_[i - 1] + slots_[i - 1];
}

double Mixture::expected_epochs(size_t i, int64_t total_samples) const {
  return static_cast<double>(total_samples) * probability(i) / static_cast<double>(num_windows(i));
}

std::pair<size_t, int64_t> Mixture::locate(int64_t k) const {
  TS_ASSERT(k >= 0, "sample index must be non-negative");
  if (size() == 1) return {0, k};
  const auto b = static_cast<uint64_t>(k / kBlock), q = static_cast<uint64_t>(k % kBlock);
  const int64_t slot = static_cast<int64_t>(permute_index(q, kBlock, derive_seed(seed_, 0, kSlotStream), b));
  const size_t i = static_cast<size_t>(std::upper_bound(slot_start_.begin(), slot_start_.end(), slot) - slot_start_.begin()) - 1;
  return {i, static_cast<int64_t>(b) * slots_[i] + (slot - slot_start_[i])};
}

void Mixture::samples(int64_t first, int64_t count, int32_t* inputs, int32_t* targets) const {
  TS_ASSERT(first >= 0 && count >= 0, "bad sample range");
  const int64_t t = loaders_[0]->seq_len();
  for (int64_t r = 0; r < count; ++r) {
    const auto [i, m] = locate(first + r);
    loaders_[i]->sample(m, inputs + r * t, targets + r * t);
  }
}

}  // namespace tessera::data
