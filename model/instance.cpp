#include "model/instance.h"

namespace tessera {

ModelInstance::ModelInstance(const ModelConfig& cfg, StageSpec spec, const RunShape& shape,
                             Device& dev, DType grad_dtype) {
  stage_ = std::make_unique<GptStage>(cfg, spec, registry_);
  Arena mp("params", dev.kind()), mg("grads", dev.kind()), ma("activations", dev.kind());
  registry_.layout(mp, mg, shape.compute, grad_dtype);
  stage_->layout_activations(ma, shape);
  params_ = std::make_unique<Arena>("params", dev, mp.used());
  grads_ = std::make_unique<Arena>("grads", dev, mg.used());
  acts_ = std::make_unique<Arena>("activations", dev, ma.used());
  registry_.layout(*params_, *grads_, shape.compute, grad_dtype);
  stage_->layout_activations(*acts_, shape);
  stage_->bind(registry_);
}

}  // namespace tessera
