// What every subcommand that runs a model needs: the resolved config, threads and the device.
#pragma once
#include <memory>
#include <string>

#include "data/shard.h"
#include "launch/config.h"
#include "model/instance.h"
#include "runtime/device.h"

namespace tessera {

// Sets OpenMP/OpenBLAS threads (train.threads, 0 = all cores) and creates the device.
std::unique_ptr<Device> session_device(const RunConfig& cfg);
// Fills model.vocab_size from the tokenizer when it is 0.
void session_resolve_vocab(RunConfig& cfg);
// A model of micro-batch `B` with weights loaded from a weights file; its config is returned.
std::unique_ptr<ModelInstance> session_load_model(const std::string& weights_path, Device& dev,
                                                  int64_t B, RunConfig& cfg);
// Mean loss per token over `batches` fixed windows of `shards`, with `B` sequences each.
struct EvalResult {
  double loss = 0;
  int64_t tokens = 0;
};
EvalResult session_evaluate(Device& dev, ModelInstance& model, const RunConfig& cfg,
                            const data::ShardSet& shards, int64_t batches);

}  // namespace tessera
