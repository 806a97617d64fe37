// Trainer: owns the run (device, model, optimizer, data, logs) and runs the step loop.
// train_step() reads top to bottom as one training step (see DESIGN.md, "One training step").
#pragma once
#include <cstdint>
#include <fstream>
#include <memory>
#include <vector>

#include "data/loader.h"
#include "data/shard.h"
#include "launch/config.h"
#include "model/instance.h"
#include "optim/adamw.h"
#include "parallel/schedule.h"
#include "parallel/topology.h"

namespace tessera {

struct StepResult {
  double loss = 0, lr = 0, grad_norm = 0;
  double step_ms = 0, data_ms = 0;
  double tokens_per_s = 0, mfu = 0;
};

class Trainer {
 public:
  Trainer(const RunConfig& cfg, Device& dev);
  ~Trainer();
  // Runs every step, validation and the final weights file. Returns the last step's result.
  StepResult run();
  StepResult train_step(int64_t step);
  // Mean validation loss per token over train.eval_batches micro-batches (fixed windows).
  double evaluate();

  ModelInstance& model() { return *model_; }
  AdamW& optimizer() { return *optimizer_; }
  std::string arena_summary() const;

 private:
  void load_batch(int64_t step);
  void finalize_grads();
  void log_step(int64_t step, const StepResult& r);
  void write_weights(const std::string& path, int64_t step);

  RunConfig cfg_;
  Device& dev_;
  Topology topology_;
  DType compute_, grad_dtype_;
  int64_t micro_per_step_ = 1;  // micro-batches per step on this rank
  std::vector<PipeOp> schedule_;
  int slots_ = 1;  // micro-batches whose activations are alive at once
  std::unique_ptr<ModelInstance> model_;
  std::unique_ptr<AdamW> optimizer_;
  std::unique_ptr<Arena> state_, io_;
  std::unique_ptr<data::ShardSet> train_shards_, valid_shards_;
  std::unique_ptr<data::Loader> train_loader_;
  // Host staging of one step's tokens and device copies: (micro, B, T) i32 each.
  std::vector<int32_t> host_inputs_, host_targets_;
  std::vector<float> host_losses_;
  Tensor inputs_, targets_, losses_, norm_scratch_;
  std::ofstream metrics_;
  double flops_per_token_ = 0, peak_flops_ = 0;
  double tokens_since_start_ = 0, seconds_since_start_ = 0;
};

}  // namespace tessera
