// ModelInstance: the model chunks one rank holds (one Stage per virtual pipeline stage, all
// with this rank's tensor-parallel slice), their parameters, gradients and activations placed
// in arenas sized by measuring the same layout first (no allocation after construction).
#pragma once
#include <memory>
#include <vector>

#include "model/stage.h"
#include "model/params.h"
#include "runtime/arena.h"

namespace tessera {

class ModelInstance {
 public:
  // `flat_multiple`: the flat parameter range is padded to split evenly over that many ranks.
  ModelInstance(const ModelConfig& cfg, const std::vector<StageSpec>& chunks, TensorSlice tp,
                const RunShape& shape, Device& dev, DType grad_dtype, int64_t flat_multiple = 1);
  // The whole model on one rank.
  ModelInstance(const ModelConfig& cfg, StageSpec spec, const RunShape& shape, Device& dev,
                DType grad_dtype);
  Stage& stage(int chunk = 0) { return *stages_[chunk]; }
  int num_chunks() const { return static_cast<int>(stages_.size()); }
  ParamRegistry& registry() { return registry_; }
  const Arena& params_arena() const { return *params_; }
  const Arena& grads_arena() const { return *grads_; }
  const Arena& acts_arena() const { return *acts_; }

 private:
  ParamRegistry registry_;
  std::vector<std::unique_ptr<Stage>> stages_;
  std::unique_ptr<Arena> params_, grads_, acts_;
};

}  // namespace tessera
