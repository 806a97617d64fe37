#include "optim/loss_spike.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "runtime/error.h"

namespace tessera {

LossSpikeDetector::LossSpikeDetector(double zscore, int64_t window)
    : zscore_(zscore), capacity_(static_cast<size_t>(window < 2 ? 2 : window)) {}

LossSpikeDetector::Verdict LossSpikeDetector::check(double loss) const {
  Verdict v;
  if (!enabled() || losses_.size() < capacity_) return v;
  // Two passes in double over at most `window` values: exact enough, and the same on every rank.
  for (double l : losses_) v.mean += l;
  v.mean /= static_cast<double>(losses_.size());
  double var = 0;
  for (double l : losses_) var += (l - v.mean) * (l - v.mean);
  v.stddev = std::sqrt(var / static_cast<double>(losses_.size()));
  // A window of equal losses has no spread: a floor keeps the test from firing on rounding.
  const double spread = std::max(v.stddev, 1e-6 * std::max(1.0, std::fabs(v.mean)));
  v.spike = loss > v.mean + zscore_ * spread;
  return v;
}

void LossSpikeDetector::accept(double loss) {
  if (!enabled()) return;
  losses_.push_back(loss);
  while (losses_.size() > capacity_) losses_.pop_front();
}

void LossSpikeDetector::restore(const std::vector<double>& losses) {
  losses_.assign(losses.begin(), losses.end());
  while (losses_.size() > capacity_) losses_.pop_front();
}

std::string LossSpikeDetector::window_text() const {
  std::string text;
  char value[32];
  for (double l : losses_) {
    std::snprintf(value, sizeof value, "%.17g", l);
    if (!text.empty()) text += ',';
    text += value;
  }
  return text;
}

void LossSpikeDetector::restore(const std::string& window_text, const std::string& where) {
  std::vector<double> losses;
  for (size_t at = 0; !window_text.empty() && at <= window_text.size();) {
    size_t end = window_text.find(',', at);
    if (end == std::string::npos) end = window_text.size();
    const std::string piece = window_text.substr(at, end - at);
    char* stop = nullptr;
    const double l = std::strtod(piece.c_str(), &stop);
    if (piece.empty() || *stop != '\0' || !std::isfinite(l))
      throw UserError(where + ": loss_window: \"" + piece + "\" is not a finite number (the checkpoint is damaged)");
    losses.push_back(l);
    at = end + 1;
  }
  restore(losses);
}

std::vector<DataSkip> data_skips_parse(const std::string& text, const std::string& where) {
  std::vector<DataSkip> skips;
  if (text.empty()) return skips;
  for (size_t at = 0; at <= text.size();) {
    size_t end = text.find(',', at);
    if (end == std::string::npos) end = text.size();
    const std::string piece = text.substr(at, end - at);
    at = end + 1;
    const size_t colon = piece.find(':');
    auto number = [&](const std::string& s, int64_t& out) {
      if (s.empty() || s.find_first_not_of(" 0123456789") != std::string::npos) return false;
      char* stop = nullptr;
      const long long v = std::strtoll(s.c_str(), &stop, 10);
      if (v < 0 || v > (1LL << 50)) return false;
      out = v;
      return true;
    };
    DataSkip s;
    if (colon == std::string::npos || !number(piece.substr(0, colon), s.from) ||
        !number(piece.substr(colon + 1), s.to) || s.from >= s.to)
      throw UserError(where + ": train.skip_data: \"" + piece +
                      "\" is not FROM:TO with FROM < TO (steps; e.g. \"1200:1260,3400:3420\")");
    if (!skips.empty() && s.from < skips.back().from)
      throw UserError(where + ": train.skip_data: \"" + piece + "\" starts before the window ahead of it (list them in step order)");
    skips.push_back(s);
  }
  return skips;
}

std::string data_skips_text(const std::vector<DataSkip>& skips) {
  std::string text;
  for (const DataSkip& s : skips) {
    if (!text.empty()) text += ',';
    text += std::to_string(s.from);
    text += ':';
    text += std::to_string(s.to);
  }
  return text;
}

void data_skips_insert(std::vector<DataSkip>& skips, const DataSkip& skip) {
  skips.insert(std::upper_bound(skips.begin(), skips.end(), skip,
                                [](const DataSkip& a, const DataSkip& b) { return a.from < b.from; }),
               skip);
}

int64_t data_skips_shift(const std::vector<DataSkip>& skips, int64_t k) {
  int64_t shift = 0;
  for (const DataSkip& s : skips)
    if (s.from <= k) shift += s.to - s.from;
  return shift;
}

}  // namespace tessera
