// ModelInstance: a GptStage with its parameters, gradients and activations placed in arenas
// sized by measuring the same layout first (no allocation after construction).
#pragma once
#include <memory>

#include "model/gpt.h"
#include "model/params.h"
#include "runtime/arena.h"

namespace tessera {

class ModelInstance {
 public:
  ModelInstance(const ModelConfig& cfg, StageSpec spec, const RunShape& shape, Device& dev,
                DType grad_dtype);
  GptStage& stage() { return *stage_; }
  ParamRegistry& registry() { return registry_; }
  const Arena& params_arena() const { return *params_; }
  const Arena& grads_arena() const { return *grads_; }
  const Arena& acts_arena() const { return *acts_; }

 private:
  ParamRegistry registry_;
  std::unique_ptr<GptStage> stage_;
  std::unique_ptr<Arena> params_, grads_, acts_;
};

}  // namespace tessera
