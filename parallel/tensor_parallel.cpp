#include "parallel/tensor_parallel.h"

namespace tessera {

Tensor reduce_from_tp(const TensorSlice& tp, Tensor partial, Tensor stream_buf) {
  if (tp.size == 1) return partial;
  if (tp.sequence_parallel) {
    tp.comm->reduce_scatter(stream_buf, partial);
    return stream_buf;
  }
  tp.comm->all_reduce(partial);
  return partial;
}

Tensor gather_from_sp(const TensorSlice& tp, Tensor stream, Tensor full_buf) {
  if (!tp.splits_sequence()) return stream;
  tp.comm->all_gather(full_buf, stream);
  return full_buf;
}

}  // namespace tessera
