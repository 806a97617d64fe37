#include "parallel/zero.h"

#include "runtime/error.h"

namespace tessera {

ZeroShard zero_shard(int64_t total, int dp, int rank) {
  TS_ASSERT(total % dp == 0, "ZeRO-1: the flat range does not split evenly over the dp ranks");
  const int64_t n = total / dp;
  return {rank * n, (rank + 1) * n};
}

void zero_reduce_gradients(Communicator& dp, Tensor shard_grads, Tensor flat_grads) {
  dp.reduce_scatter(shard_grads, flat_grads);
}

void zero_gather_parameters(Communicator& dp, Tensor flat_values, const ZeroShard& mine) {
  const Tensor flat = flat_values.view({flat_values.numel()});
  dp.all_gather(flat, flat.slice_rows(mine.begin, mine.size()));
}

}  // namespace tessera
