// AdamW over a parameter registry. Master weights and moments are kept in f32 (f64 on the CPU
// reference); when the working weights are lower precision (bf16 on CUDA) the optimizer owns a
// separate master copy and writes the rounded result back into the working weights.
#pragma once
#include <vector>

#include "model/params.h"
#include "optim/config.h"
#include "runtime/arena.h"
#include "runtime/device.h"

namespace tessera {

class AdamW {
 public:
  AdamW(const OptimConfig& cfg, ParamRegistry& registry, DType master_dtype);
  // Carves master weights (when separate) and moments out of `state`.
  void layout(Arena& state);
  // Copies the freshly initialised working weights into the master copy (when separate).
  void init_master(Device& dev);
  // One update with learning rate lr; `step` is 1-based; gradients are multiplied by
  // grad_scale (clipping) inside the update.
  void step(Device& dev, double lr, int64_t step, double grad_scale);
  bool decays(const Param& p) const;

  struct State {
    Tensor master, m, v;  // master is empty when the working weights are the master
  };
  const std::vector<State>& state() const { return state_; }

 private:
  OptimConfig cfg_;
  ParamRegistry& registry_;
  DType master_dtype_;
  std::vector<State> state_;
};

// Global L2 norm of every gradient in the registry. `scratch` is a 1-element tensor on the
// device in the gradient dtype.
double grad_global_norm(Device& dev, const ParamRegistry& registry, Tensor scratch);

}  // namespace tessera
