// Parameter registry: every parameter with its global shape, the slice this rank owns (shard
// spec) and how it is initialised and optimised. Values and gradients live in two arenas in
// registry order, so the whole gradient set is also one flat range.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/arena.h"
#include "runtime/tensor.h"

namespace tessera {

enum class ParamInit { normal, zeros, ones };
enum class ParamKind { matrix, embedding, bias, norm };

struct Param {
  std::string name;    // documented in docs/weights-format.md, e.g. "h.0.attn.qkv.weight"
  Shape global_shape;  // the unsharded tensor
  Shape local_shape;   // what this rank holds
  int shard_dim = -1;  // -1: replicated; otherwise the dimension split across ranks
  // The sharded dimension is made of parts of these global sizes (q | k | v, gate | up), each
  // split evenly across the `shard_ranks` ranks; empty: one part, the whole dimension. Local
  // part j holds rows [shard_rank * n_j / shard_ranks, (shard_rank + 1) * n_j / shard_ranks)
  // of global part j.
  std::vector<int64_t> shard_parts;
  int shard_rank = 0, shard_ranks = 1;
  // Replicated over tensor-parallel ranks but its gradient is a partial sum there (LayerNorm
  // weights under sequence parallelism): summed over the tp group after backward.
  bool grad_sum_tp = false;
  // A second copy of a parameter another pipeline stage owns (the tied token embedding on the
  // last stage): kept equal by summing gradients, never counted twice (norm, checkpoints).
  bool tied_copy = false;
  ParamKind kind = ParamKind::matrix;
  ParamInit init = ParamInit::normal;
  double init_std = 0.02;
  int64_t init_rows = -1;  // rows (of dim 0) that get random values; -1 = all (padding rows 0)
  Tensor value;
  Tensor grad;
};

// Along p's sharded dimension: the global index of local index j, and the local end
// (exclusive) of the part j lies in.
int64_t param_shard_global(const Param& p, int64_t j);
int64_t param_shard_part_end(const Param& p, int64_t j);
// True when every part of p's sharded dimension splits evenly over `ranks` ranks.
bool param_shard_divides(const Param& p, int ranks);

class ParamRegistry {
 public:
  Param& add(Param p);
  // Carves values (dtype `value_dtype`) and gradients (`grad_dtype`) out of the arenas. Every
  // parameter starts at a multiple of kAlignElems elements in both, so a flat element range
  // means the same parameters in values and gradients (ZeRO shards), and the flat length is a
  // multiple of kAlignElems * `flat_multiple` (equal shards over that many ranks).
  static constexpr int64_t kAlignElems = 128;
  void layout(Arena& values, Arena& grads, DType value_dtype, DType grad_dtype,
              int64_t flat_multiple = 1);
  std::vector<Param>& all() { return params_; }
  const std::vector<Param>& all() const { return params_; }
  Param& get(const std::string& name);
  const Param* find(const std::string& name) const;
  int64_t local_numel() const;
  // One view over every gradient / value, padding gaps included (they stay zero).
  Tensor flat_grads() const { return flat_grads_; }
  Tensor flat_values() const { return flat_values_; }
  // Offset of p's first element in the flat views.
  int64_t flat_offset(const Param& p) const;

 private:
  std::vector<Param> params_;
  Tensor flat_values_, flat_grads_;
};

// Elements [begin, begin + count) of `t` as a 1-D view.
Tensor flat_slice(const Tensor& t, int64_t begin, int64_t count);

}  // namespace tessera
