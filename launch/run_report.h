// The run's own account of itself: <log.dir>/README.md (a model card: what was trained, on
// what, how, with which results, and how to reproduce it) and loss.svg (training and
// validation loss against step), built only from the files the run leaves behind:
// config.toml, metrics.jsonl, mixture.json and launches.jsonl (one record per launch: when,
// where, which layout, from which checkpoint, how it ended). The trainer writes them when a
// run ends or stops; `tessera report RUN_DIR` writes them again at any time.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace tessera {

struct LossPoint {
  int64_t step = 0;
  double loss = 0;
};

// A self-contained SVG line chart of the training loss and, when given, the validation loss
// against step, with labelled axes and grid lines at round values. Beyond 1000 training points,
// each point is the mean of that many consecutive ones (said in the title).
std::string loss_chart_svg(const std::vector<LossPoint>& train, const std::vector<LossPoint>& valid);

// A run's headline figures, as its model card gives them.
struct RunSummary {
  std::string dir;
  int64_t parameters = 0, step = 0, tokens = 0;
  double flops = 0;  // training FLOPs so far, counted as MFU counts them (docs/performance.md)
  double train_loss = 0;  // last logged
  double best_val_loss = NAN, tokens_per_s = NAN, mfu = NAN;  // NaN: none logged
};

// Writes <run_dir>/README.md and <run_dir>/loss.svg (each through a temporary name) and returns
// the run's headline figures. Throws UserError naming the file when config.toml or
// metrics.jsonl is missing or unreadable, or when no training step was logged yet.
RunSummary write_run_report(const std::string& run_dir);

// Several runs side by side (a scaling sweep): a Markdown table in order of training FLOPs.
std::string runs_table(std::vector<RunSummary> runs);

// Appends `json` (one object, no newline) as a line of <run_dir>/launches.jsonl.
void append_launch_record(const std::string& run_dir, const std::string& json);

// The YAML front matter that makes a README.md a Hugging Face model card: `library`, the tags
// tessera, `family` and pretraining, and the languages (none: no language list).
std::string model_card_front_matter(const std::string& library, const std::string& family,
                                    const std::vector<std::string>& languages);

// Writes `text` to `path` through a temporary name and a rename: never half a file. Throws
// UserError naming the path when it cannot.
void write_text_file(const std::string& path, const std::string& text);

// UTC now as 2026-11-23T23:31:21Z.
std::string utc_timestamp();

}  // namespace tessera
