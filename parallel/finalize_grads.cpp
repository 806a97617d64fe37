#include "parallel/finalize_grads.h"

#include "parallel/zero.h"

namespace tessera {

void finalize_grads(const GradFinalize& f, GradBuckets& buckets) {
  for (size_t i = 0; i < buckets.size(); ++i)
    if (!buckets.done(i) && !f.tp_partial[i].empty()) f.tp->all_reduce(f.tp_partial[i]);
  if (!f.tied_embedding.empty() && f.embedding->size() > 1) f.embedding->all_reduce(f.tied_embedding);
  for (size_t i = 0; i < buckets.size(); ++i)
    if (!buckets.done(i)) buckets.param_done(i);
  if (!f.zero_shard_grads.empty()) zero_reduce_gradients(*f.dp, f.zero_shard_grads, f.flat_grads);
  buckets.finish();
}

}  // namespace tessera
