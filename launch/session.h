// What every subcommand that runs a model needs: the resolved config, threads and the device.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/shard.h"
#include "launch/config.h"
#include "model/instance.h"
#include "runtime/device.h"

namespace tessera {

// Sets OpenMP/OpenBLAS threads (train.threads; 0 = the node's cores shared by the
// `local_ranks` ranks on it) and creates the device (CUDA: the GPU cuda_ordinal_for picks,
// printed per rank).
std::unique_ptr<Device> session_device(const RunConfig& cfg, int local_rank = 0, int local_ranks = 1,
                                       int rank = 0);
// Which of the `visible` GPUs a rank uses: the only one when one is visible (Slurm's
// --gpus-per-task=1 or a per-rank CUDA_VISIBLE_DEVICES), else the one of its local rank.
// UserError when none is visible, or when several are but fewer than the ranks on the node.
int cuda_ordinal_for(int visible, int local_rank, int local_ranks);
// Fills model.vocab_size from the tokenizer when it is 0.
void session_resolve_vocab(RunConfig& cfg);
// The shards' token ids fit the model's vocabulary (UserError otherwise). Layers take ids as
// given: a vocabulary-parallel slice cannot tell a foreign id from an invalid one.
void session_check_shards(const RunConfig& cfg, const data::ShardSet& shards);
// A model of micro-batch `B` with weights loaded from a weights file; its config is returned.
std::unique_ptr<ModelInstance> session_load_model(const std::string& weights_path, Device& dev,
                                                  int64_t B, RunConfig& cfg);
// Whether `path` is a checkpoint directory (holds index.h5) rather than a weights file.
bool session_is_checkpoint(const std::string& path);
// The same from a checkpoint directory: the whole model on this process, from the global
// tensors model/<name>. Every shard is checked against its recorded size and checksum first.
std::unique_ptr<ModelInstance> session_load_checkpoint_model(const std::string& dir, Device& dev,
                                                             int64_t B, RunConfig& cfg);
// The parameters of the whole model `m` (names, global shapes) in registration order, without
// any storage: what a checkpoint or weights file of that model holds.
std::vector<Param> session_param_list(const ModelConfig& m);
// Loss over `batches` fixed windows of `shards` (train.micro_batch sequences each; the same
// windows for every evaluation).
struct EvalResult {
  double loss = 0;     // mean per token
  double sum = 0;      // summed per-token losses
  int64_t tokens = 0;  // tokens summed
};
EvalResult session_evaluate(Device& dev, ModelInstance& model, const RunConfig& cfg,
                            const data::ShardSet& shards, int64_t batches);
// The driver under it: batch b runs here when b % parts == part. `forward(inputs, targets,
// losses)` fills per-token losses and returns whether it produced them on this caller (a
// pipeline's last stage does); only those are summed.
using EvalForward = std::function<bool(Tensor inputs, Tensor targets, Tensor losses)>;
EvalResult session_evaluate_part(Device& dev, const RunConfig& cfg, const data::ShardSet& shards,
                                 int64_t batches, DType loss_dtype, const EvalForward& forward,
                                 int part = 0, int parts = 1);

}  // namespace tessera
