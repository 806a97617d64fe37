// Loss-spike detection: a step's loss is a spike when it exceeds the mean of the last `window`
// accepted losses by more than `zscore` standard deviations of them. Steps judged spikes are not
// accepted into the window, so one bad batch does not raise the bar for the next. The detector
// arms once the window is full. Every rank holds the same window (it is fed the loss reduced over
// the world), so every rank reaches the same verdict without another collective.
#pragma once
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

namespace tessera {

class LossSpikeDetector {
 public:
  // zscore 0 = never a spike.
  LossSpikeDetector(double zscore, int64_t window);

  bool enabled() const { return zscore_ > 0; }
  struct Verdict {
    bool spike = false;
    double mean = 0, stddev = 0;  // of the window the loss was held against
  };
  Verdict check(double loss) const;
  void accept(double loss);  // a step that was applied: its loss joins the window

  // The window, oldest first: saved with checkpoints so a resumed run judges alike.
  std::vector<double> window() const { return {losses_.begin(), losses_.end()}; }
  // The window as checkpoints store it: "%.17g" values, comma-separated (exact round trip).
  std::string window_text() const;
  void restore(const std::vector<double>& losses);
  void restore(const std::string& window_text, const std::string& where);  // throws UserError naming `where`

 private:
  double zscore_;
  size_t capacity_;
  std::deque<double> losses_;
};

// Data windows skipped after a loss spike: after step `from` (steps done), the run reads on from
// where step `to` would have ended, i.e. the batches of steps from+1 .. to are never seen.
struct DataSkip {
  int64_t from = 0, to = 0;
  bool operator==(const DataSkip&) const = default;
};
// "FROM:TO[,FROM:TO...]" (train.skip_data); FROM < TO, FROMs non-decreasing. Throws UserError
// naming `where` and the piece at fault.
std::vector<DataSkip> data_skips_parse(const std::string& text, const std::string& where);
std::string data_skips_text(const std::vector<DataSkip>& skips);
// Adds `skip` after every window that starts at or before it (the list stays in step order).
void data_skips_insert(std::vector<DataSkip>& skips, const DataSkip& skip);
// How many steps' worth of batches lie skipped before the batch of step index k (0-based).
int64_t data_skips_shift(const std::vector<DataSkip>& skips, int64_t k);

}  // namespace tessera
