// The run configuration: one struct per TOML section, each field declared once in a table
// (config.cpp) that drives parsing, validation messages and the resolved config.toml.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "optim/config.h"

namespace tessera {

struct ParallelConfig {
  int64_t tp = 1, pp = 1, dp = 0;  // dp = 0: world / (tp * pp)
  std::string schedule = "1f1b";
  int64_t virtual_stages = 1;
  bool sequence_parallel = false;
  int64_t zero = 0;
  double bucket_mb = 25;
  // true: a tensor-parallel group whose ranks sit on different nodes is an error (its traffic
  // would cross the network every layer); false: a warning.
  bool node_local_tp = false;
};

struct TrainConfig {
  int64_t steps = 100;
  int64_t micro_batch = 4;
  int64_t global_batch = 0;  // sequences per step; 0 = micro_batch * dp
  int64_t seed = 1234;
  std::string device = "cpu";       // cpu | cuda
  std::string precision = "fp32";   // fp32 | bf16 | fp64
  std::string recompute = "none";   // none | full
  int64_t eval_every = 0;           // 0 = only at the end
  int64_t eval_batches = 8;
  int64_t threads = 0;              // CPU threads per rank; 0 = all cores / ranks on the node
  int64_t stop_at = 0;              // stop after this step as if signalled (saving); 0 = never
  // A rank that waits this long on one collective or transfer ends the job with a report of
  // who had not arrived (parallel/watchdog.h); 0 = wait forever.
  double collective_timeout_s = 300;
  // A step whose gradient norm (over every rank) is NaN or infinite: "stop" ends the run before
  // the update; "skip" leaves weights and optimizer state as they were and goes on, until
  // max_skipped steps in a row were skipped.
  // Several ranks: a rank whose compute time in a step exceeds the ranks' mean by this factor
  // (and by 10 ms) is named in the step log as a straggler; 0 = never.
  double straggler_ratio = 1.5;
  std::string on_nonfinite = "stop";
  int64_t max_skipped = 5;
  // Loss spikes (optim/loss_spike.h): a step whose loss exceeds the mean of the last spike_window
  // applied steps' losses by spike_zscore standard deviations is a spike (0 = never). "skip": it
  // is not applied; "rewind": the run goes back to its newest checkpoint and skips the batches
  // from there to the spike. max_skipped spikes in a row (skip) or rewinds without passing the
  // furthest step reached (rewind) end the run.
  double spike_zscore = 0;
  int64_t spike_window = 100;
  std::string on_spike = "skip";
  // Data windows never trained on, "FROM:TO,...": after step FROM the run reads on from where step
  // TO would have ended. Rewinds record theirs here; setting it reproduces such a run from scratch.
  std::string skip_data;
};

// One corpus of a training mixture ([[data.sources]]).
struct DataSourceConfig {
  std::string name;
  std::string language;  // "" = the name
  std::string path;      // directory of training token shards
  std::string valid;     // directory of held-out token shards; empty = none
  double weight = 0;     // sampling weight when data.temperature = 0
};

struct DataConfig {
  std::string tokenizer = "byte";
  std::string train;  // directory of token shards (a single source)
  std::string valid;  // directory of token shards; empty = no validation
  double temperature = 0;  // > 0: source probabilities from token counts, p_i ∝ n_i^(1/T)
  std::vector<DataSourceConfig> sources;  // the mixture; empty = the single source data.train
};

struct CheckpointConfig {
  std::string dir;            // "" = <log.dir>/checkpoints
  int64_t every = 0;          // steps between saves; 0 = only when stopped by a signal
  int64_t keep = 2;           // newest complete checkpoints kept
  int64_t keep_every = 0;     // also keep every step that is a multiple of this; 0 = none
  bool async = false;         // write from a background thread while training continues
  std::string resume = "none";  // "auto" | "none" | a checkpoint directory
  bool verify = true;         // checksum every shard before resuming (sizes are always checked)
  std::string root(const std::string& log_dir) const { return dir.empty() ? log_dir + "/checkpoints" : dir; }
};

struct LogConfig {
  std::string dir = "runs/default";
  int64_t every = 1;
  bool tensorboard = false;
};

struct RunConfig {
  ModelConfig model;
  ParallelConfig parallel;
  TrainConfig train;
  OptimConfig optim;
  DataConfig data;
  CheckpointConfig checkpoint;
  LogConfig log;
  std::string source;  // file the config came from (for messages)
};

// Parses `path` (may be empty: defaults only), applies `--set section.key=value` overrides,
// validates. Every problem is a UserError naming the file, the key and what is allowed.
RunConfig config_load(const std::string& path, const std::vector<std::string>& overrides);
// Parses TOML text (e.g. the config stored inside a weights file).
RunConfig config_parse(const std::string& toml_text, const std::string& source_name);
// The resolved configuration as TOML (every key, defaults included).
std::string config_to_toml(const RunConfig& cfg);

}  // namespace tessera
