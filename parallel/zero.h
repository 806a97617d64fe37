// ZeRO-1 (Rajbhandari et al. 2020, stage 1): optimizer state and master weights sharded over
// the data-parallel ranks. The flat parameter range (padded to a multiple of dp by the
// registry) splits into dp equal shards; data-parallel rank r owns [r n, (r + 1) n). After
// backward each rank receives the summed gradient of its shard only (reduce-scatter), updates
// its shard, and the ranks exchange the updated values (all-gather).
#pragma once
#include <cstdint>

#include "parallel/comm.h"
#include "runtime/tensor.h"

namespace tessera {

struct ZeroShard {
  int64_t begin = 0, end = 0;  // this rank's elements of the flat range
  int64_t size() const { return end - begin; }
};
// The shard of data-parallel rank `rank` of `dp` over `total` elements (divisible by dp).
ZeroShard zero_shard(int64_t total, int dp, int rank);
// shard_grads (n) = this rank's shard of the flat gradient summed over dp.
void zero_reduce_gradients(Communicator& dp, Tensor shard_grads, Tensor flat_grads);
// Every rank's updated shard of flat_values, to every rank of dp (in place).
void zero_gather_parameters(Communicator& dp, Tensor flat_values, const ZeroShard& mine);

}  // namespace tessera
