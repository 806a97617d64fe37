// Trainer: owns the run of one rank (device, model chunks, optimizer shard, data, logs) and
// runs the step loop. train_step() reads top to bottom as one training step (see DESIGN.md,
// "One training step"); the same code runs one process or any tp x pp x dp layout.
#pragma once
#include <cmath>
#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "checkpoints/background.h"
#include "checkpoints/checkpoint.h"
#include "data/loader.h"
#include "data/mixture.h"
#include "data/shard.h"
#include "launch/config.h"
#include "launch/tensorboard.h"
#include "model/instance.h"
#include "optim/adamw.h"
#include "optim/loss_spike.h"
#include "parallel/communicators.h"
#include "parallel/flight_recorder.h"
#include "parallel/watchdog.h"
#include "parallel/grad_buckets.h"
#include "parallel/pipeline_executor.h"
#include "parallel/schedule.h"
#include "parallel/topology.h"

namespace tessera {

class MpiWorld;

// Where one step's time went on a rank (milliseconds). compute is the remainder.
struct StepSplit {
  double data = 0, compute = 0, exposed_comm = 0, bubble = 0;
};

// Ranks whose checkpoint work is done / failed (summed over the world).
struct SaveProgress {
  double done = 0, failed = 0;
};
// Summed over the world with the loss: ranks that received a stop signal, and the save's
// progress.
struct StepControl {
  double signalled = 0;
  SaveProgress save;
};

struct StepResult {
  double loss = 0, lr = 0, grad_norm = 0;
  double step_ms = 0;
  double tokens_per_s = 0, mfu = 0;
  StepSplit split;            // mean over ranks
  double comm_bytes[4] = {};  // this rank's analytic bus bytes: tp, pp, dp, embedding
  StepControl control;
  bool skipped = false;  // non-finite gradient norm or a loss spike: the update was not applied
  bool spike = false;    // the loss was a spike (train.spike_zscore) against this window:
  double spike_mean = 0, spike_stddev = 0;
  int slowest_rank = -1;          // the rank whose compute took longest (several ranks)
  double slowest_compute_ms = 0;
};

class Trainer {
 public:
  // `world` is null for one process. Construction is collective over the world.
  Trainer(const RunConfig& cfg, Device& dev, const MpiWorld* world = nullptr);
  ~Trainer();
  // Runs every step (from the resumed checkpoint's, if any), validation, checkpoints and the
  // final weights file. Returns the last step's result. Stops early, after saving, when a
  // stop signal arrived (stopped() is then true).
  StepResult run();
  bool stopped() const { return stopped_; }
  int64_t start_step() const { return start_step_; }
  StepResult train_step(int64_t step);
  // Mean validation loss per token over train.eval_batches micro-batches (fixed windows) of
  // every held-out set: per set, and overall (weighted by the sets' sampling probabilities).
  struct Validation {
    double overall = NAN;
    std::vector<double> per_set;  // in the order of the sources that have a valid set
  };
  Validation evaluate();
  void report_mixture();
  void log_validation(int64_t step, const Validation& v);

  ModelInstance& model() { return *model_; }
  AdamW& optimizer() { return *optimizer_; }
  std::string arena_summary() const;
  int rank() const { return rank_; }

 private:
  void setup_data();
  void setup_model();
  void setup_buckets();
  void load_batch(int64_t step);
  void run_schedule(int64_t step);
  void finalize_grads();
  double global_grad_norm();
  void gather_parameters();
  // The step's current phase, for a hang report.
  void phase(const char* what) {
    if (recorder_) recorder_->set_phase(-1, what);
  }
  StepResult run_steps();
  double world_sum(double v);
  void world_sum(double* v, int64_t n);  // in place, one collective for n scalars
  bool counted_once(const Param& p) const;
  void log_step(int64_t step, const StepResult& r);
  void write_weights(const std::string& path, int64_t step);

  // Checkpoints (launch/trainer_checkpoint.cpp).
  void plan_shard();
  // Loads the newest valid checkpoint of `candidates` (all must be valid when !automatic);
  // false when none loaded.
  bool resume_from(const std::vector<std::string>& candidates, bool automatic);
  void resume();
  // After a loss spike at step index `step` with train.on_spike = "rewind": back to the newest
  // checkpoint, the batches from it to the spike skipped. False when there is no checkpoint.
  bool rewind_after_spike(int64_t step, const StepResult& r);
  void record_spike(int64_t step, const StepResult& r, const char* action, int64_t to_step);
  std::string checkpoint_problem(const std::string& dir, std::unique_ptr<CheckpointReader>& reader);
  // Returns when (now_s) this rank's reads and checksums ended.
  double load_checkpoint(const CheckpointReader& reader);
  void save_checkpoint(int64_t step, bool async);
  SaveProgress save_progress() const;  // this rank's
  void advance_save(const SaveProgress& world_progress);
  void drain_save();
  CheckpointMeta checkpoint_meta(int64_t step) const;
  // "world 4 = dp 2 x pp 1 x tp 2, zero 1, schedule 1f1b, ...": checkpoints and launch records.
  std::string layout_text() const;
  // A start record in <log.dir>/launches.jsonl (collective: rank 0 gathers the host names and
  // writes it); at the end ("finished", or how the run stopped) rank 0 writes an end record,
  // then the run's README.md and loss.svg (launch/run_report.h).
  void check_node_local_tp() const;  // rank 0: parallel.node_local_tp against rank_hosts_
  void record_launch_start();
  void record_launch_end(const char* how, int64_t step);

  RunConfig cfg_;
  Device& dev_;
  const MpiWorld* world_;
  std::vector<std::string> rank_hosts_;
  int64_t skipped_in_row_ = 0;  // steps skipped for a non-finite gradient norm, in a row
  int straggler_ = -1;          // the rank last named a straggler, while it lags
  int64_t straggler_since_ = 0;
  void report_straggler(int64_t step, const StepResult& r);  // rank r's host name, on rank 0 (empty elsewhere)
  int rank_ = 0;
  Topology topology_;
  Coords me_;
  std::unique_ptr<FlightRecorder> recorder_;  // several ranks with a collective timeout
  Communicators comms_;
  std::unique_ptr<CommWatchdog> watchdog_;  // destroyed before the communicators it can abort
  DType compute_, grad_dtype_;
  int64_t micro_per_step_ = 1;  // micro-batches per step on this rank
  int chunks_ = 1;              // virtual pipeline stages held by this rank
  std::vector<PipeOp> schedule_;
  std::unique_ptr<PipelineExecutor> pipeline_;
  std::unique_ptr<ModelInstance> model_;
  std::unique_ptr<AdamW> optimizer_;
  std::unique_ptr<Arena> state_, io_;
  std::unique_ptr<data::Mixture> mixture_;  // the training sources and the sample order
  struct ValidSet {
    std::string name, language;
    double probability = 0;  // of its source in the training mixture
    std::unique_ptr<data::ShardSet> shards;
  };
  std::vector<ValidSet> valid_;
  // Host staging of one step's tokens and device copies: (micro, B, T) i32 each.
  std::vector<int32_t> host_inputs_, host_targets_;
  Tensor inputs_, targets_, losses_, norm_scratch_;
  Tensor shard_grads_;  // ZeRO-1: this rank's reduced gradient shard
  std::unique_ptr<GradBuckets> buckets_;              // which gradients are final; dp buckets
  std::vector<std::vector<size_t>> params_of_layer_;  // global layer -> registry indices
  std::ofstream metrics_;
  std::unique_ptr<TensorBoardWriter> tensorboard_;  // rank 0 with log.tensorboard
  // The scalars to TensorBoard, when on; a write failure turns it off with a warning.
  void tensorboard_scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values);
  double flops_per_token_ = 0, peak_flops_ = 0;
  double seconds_since_start_ = 0;  // this rank's step time so far (ETA)
  // Resumed state: the first step to run and the data position (global sample of step s is
  // sample_base_ + s * global_batch).
  int64_t start_step_ = 0, sample_base_ = 0;
  // Data windows skipped after loss spikes (and train.skip_data): the global sample of step s is
  // samples_at(s) = sample_base_ + (s + data_skips_shift(data_skips_, s)) * global_batch.
  std::vector<DataSkip> data_skips_;
  int64_t samples_at(int64_t step) const {
    return sample_base_ + (step + data_skips_shift(data_skips_, step)) * cfg_.train.global_batch;
  }
  LossSpikeDetector spikes_{0, 2};
  int64_t rewinds_in_row_ = 0, furthest_step_ = -1;  // rewinds since the run last passed furthest_step_
  std::string resumed_from_;  // the checkpoint this launch resumed from, "" for none
  bool stopped_ = false;
  // Checkpoint saving: this rank's owned pieces and host buffers, the background writer and
  // where the current save stands.
  enum class SavePhase { none, writing, committing };
  ShardData shard_;
  bool owns_state_ = false;
  std::unique_ptr<BackgroundJobs> jobs_;
  SavePhase save_phase_ = SavePhase::none;
  int64_t save_step_ = 0;
  double save_started_ = 0;  // seconds (steady clock) when the save began
  ShardFile shard_file_;
};

}  // namespace tessera
