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
  int64_t shard_offset = 0;
  ParamKind kind = ParamKind::matrix;
  ParamInit init = ParamInit::normal;
  double init_std = 0.02;
  int64_t init_rows = -1;  // rows (of dim 0) that get random values; -1 = all (padding rows 0)
  Tensor value;
  Tensor grad;
};

class ParamRegistry {
 public:
  Param& add(Param p);
  // Carves values (dtype `value_dtype`) and gradients (`grad_dtype`) out of the arenas.
  void layout(Arena& values, Arena& grads, DType value_dtype, DType grad_dtype);
  std::vector<Param>& all() { return params_; }
  const std::vector<Param>& all() const { return params_; }
  Param& get(const std::string& name);
  const Param* find(const std::string& name) const;
  int64_t local_numel() const;
  // One view over every gradient, padding gaps included (they stay zero).
  Tensor flat_grads() const;

 private:
  std::vector<Param> params_;
};

}  // namespace tessera
