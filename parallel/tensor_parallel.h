// Tensor parallelism as the model sees it: the slice of every layer this rank holds, and the
// transitions of the residual stream between replicated, partial and sequence-split forms
// (Megatron-LM's mappings, named for what they do to the tensor). The backward of each
// transition is the other one.
#pragma once
#include "parallel/comm.h"
#include "runtime/tensor.h"

namespace tessera {

// This rank's slice of every layer under tensor parallelism (Megatron-LM style): query and
// key/value heads and MLP columns (column-parallel QKV and fc, row-parallel projections),
// vocabulary rows of the embedding and LM head. With sequence parallelism the residual stream
// (norms, dropout, residual adds) is split along the tokens of the micro-batch instead of
// replicated: rank r holds tokens [r * N/tp, (r+1) * N/tp).
struct TensorSlice {
  int size = 1, rank = 0;
  bool sequence_parallel = false;
  Communicator* comm = nullptr;  // the tensor-parallel group; may be null when size == 1

  bool splits_sequence() const { return sequence_parallel && size > 1; }
};

// Row-parallel outputs (N,C), partial sums over the tp group, become the stream: summed by an
// all-reduce in place (returns `partial`), or under sequence parallelism reduce-scattered into
// `stream_buf` (this rank's tokens; returns it). Identity for tp = 1.
Tensor reduce_from_tp(const TensorSlice& tp, Tensor partial, Tensor stream_buf);

// The stream becomes the full (N,C) tensor every tp rank's column-parallel layer reads: under
// sequence parallelism all-gathered into `full_buf` (returns it); otherwise the stream already
// is the full tensor (returns `stream`).
Tensor gather_from_sp(const TensorSlice& tp, Tensor stream, Tensor full_buf);

}  // namespace tessera
