// Every gradient reduction after backward, in one place (Megatron's finalize_model_grads):
// the tensor-parallel sums of partial gradients that backward did not already start, the tied
// token embedding summed between the first and last pipeline stage (each holds a copy), then
// data parallel: the buckets' all-reduces finished, or ZeRO-1's reduce-scatter of the whole
// flat gradient into this rank's shard.
#pragma once
#include <vector>

#include "parallel/comm.h"
#include "parallel/grad_buckets.h"
#include "runtime/tensor.h"

namespace tessera {

struct GradFinalize {
  Communicator* tp = nullptr;
  Communicator* dp = nullptr;
  Communicator* embedding = nullptr;  // {first, last} stage of this pipeline; size 1 otherwise
  // Per parameter (registry order): its gradient when it is a partial sum over tp (a norm's
  // weights under sequence parallelism), else empty.
  std::vector<Tensor> tp_partial;
  Tensor tied_embedding;  // the tied embedding's gradient (copies on first and last stage)
  Tensor flat_grads;
  Tensor zero_shard_grads;  // ZeRO-1: this rank's shard of the summed gradient; else empty
};

void finalize_grads(const GradFinalize& f, GradBuckets& buckets);

}  // namespace tessera
