#include "model/instance.h"

namespace tessera {

ModelInstance::ModelInstance(const ModelConfig& cfg, const std::vector<StageSpec>& chunks,
                             TensorSlice tp, const RunShape& shape, Device& dev, DType grad_dtype,
                             int64_t flat_multiple) {
  for (const StageSpec& spec : chunks)
    stages_.push_back(std::make_unique<Stage>(cfg, spec, tp, registry_));
  auto layout = [&](Arena& p, Arena& g, Arena& a) {
    registry_.layout(p, g, shape.compute, grad_dtype, flat_multiple);
    for (auto& stage : stages_) stage->layout_activations(a, shape);
  };
  Arena mp("params", dev.kind()), mg("grads", dev.kind()), ma("activations", dev.kind());
  layout(mp, mg, ma);
  params_ = std::make_unique<Arena>("params", dev, mp.used());
  grads_ = std::make_unique<Arena>("grads", dev, mg.used());
  acts_ = std::make_unique<Arena>("activations", dev, ma.used());
  layout(*params_, *grads_, *acts_);
  for (auto& stage : stages_) stage->bind(registry_);
}

ModelInstance::ModelInstance(const ModelConfig& cfg, StageSpec spec, const RunShape& shape,
                             Device& dev, DType grad_dtype)
    : ModelInstance(cfg, std::vector<StageSpec>{spec}, TensorSlice{}, shape, dev, grad_dtype) {}

}  // namespace tessera
