// AdamW over a flat range of a parameter registry. Master weights and moments are kept in f32
// (f64 on the CPU reference); when the working weights are lower precision (bf16 on CUDA) the
// optimizer owns a separate master copy and writes the rounded result back into the working
// weights. The range is the whole registry, or with ZeRO-1 this rank's shard of it: state is
// held for [begin, end) of the flat layout only, and each parameter is updated where it
// intersects the range.
#pragma once
#include <vector>

#include "model/params.h"
#include "optim/config.h"
#include "runtime/arena.h"
#include "runtime/device.h"

namespace tessera {

class AdamW {
 public:
  // [begin, end) in flat elements of the registry's layout; end = -1: to the end.
  AdamW(const OptimConfig& cfg, ParamRegistry& registry, DType master_dtype, int64_t begin = 0,
        int64_t end = -1);
  // Carves master weights (when separate) and moments out of `state`. Call after the
  // registry's layout.
  void layout(Arena& state);
  // Copies the freshly initialised working weights into the master copy (when separate).
  void init_master(Device& dev);
  // One update with learning rate lr; `step` is 1-based; gradients are multiplied by
  // grad_scale (clipping) inside the update. `grads` covers [begin, end) (empty: the
  // registry's own gradients over the range).
  void step(Device& dev, double lr, int64_t step, double grad_scale, Tensor grads = {});
  bool decays(const Param& p) const;

  int64_t begin() const { return begin_; }
  int64_t end() const { return end_; }
  // Master weights over [begin, end); empty when the working weights are the master.
  Tensor master() const { return master_; }
  // AdamW's first and second moments over [begin, end) (checkpoints read and write them).
  Tensor exp_avg() const { return m_; }
  Tensor exp_avg_sq() const { return v_; }
  DType master_dtype() const { return master_dtype_; }

  // A parameter's elements inside the range: flat [lo, hi).
  struct Piece {
    Param* param;
    int64_t lo, hi;
  };
  const std::vector<Piece>& pieces() const { return pieces_; }

 private:
  OptimConfig cfg_;
  ParamRegistry& registry_;
  DType master_dtype_;
  int64_t begin_, end_;
  std::vector<Piece> pieces_;
  Tensor master_, m_, v_;
};

// Sum of squares of `pieces` (1-D views of gradients), accumulated on the device in
// `scratch` (1 element, gradient dtype) and returned to the host. 0 when pieces is empty.
double grad_sum_squares(Device& dev, const std::vector<Tensor>& pieces, Tensor scratch);
// Global L2 norm of every gradient in the registry (one process).
double grad_global_norm(Device& dev, const ParamRegistry& registry, Tensor scratch);

}  // namespace tessera
