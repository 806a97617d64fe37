#include "optim/adamw.h"

#include <cmath>

#include "runtime/ops.h"

namespace tessera {

AdamW::AdamW(const OptimConfig& cfg, ParamRegistry& registry, DType master_dtype)
    : cfg_(cfg), registry_(registry), master_dtype_(master_dtype) {}

bool AdamW::decays(const Param& p) const {
  switch (p.kind) {
    case ParamKind::matrix: return true;
    case ParamKind::embedding: return cfg_.decay_embeddings;
    case ParamKind::bias:
    case ParamKind::norm: return cfg_.decay_norms_and_biases;
  }
  return false;
}

void AdamW::layout(Arena& arena) {
  state_.clear();
  for (const Param& p : registry_.all()) {
    State s;
    if (p.value.dtype != master_dtype_) s.master = arena.take(p.local_shape, master_dtype_);
    s.m = arena.take(p.local_shape, master_dtype_);
    s.v = arena.take(p.local_shape, master_dtype_);
    state_.push_back(s);
  }
}

void AdamW::init_master(Device& dev) {
  auto& params = registry_.all();
  for (size_t i = 0; i < params.size(); ++i)
    if (!state_[i].master.empty()) ops::convert(dev, state_[i].master, params[i].value);
}

void AdamW::step(Device& dev, double lr, int64_t step, double grad_scale) {
  auto& params = registry_.all();
  for (size_t i = 0; i < params.size(); ++i) {
    Param& p = params[i];
    const State& s = state_[i];
    ops::AdamWParams hp{static_cast<float>(lr),
                        static_cast<float>(cfg_.beta1),
                        static_cast<float>(cfg_.beta2),
                        static_cast<float>(cfg_.eps),
                        decays(p) ? static_cast<float>(cfg_.weight_decay) : 0.0f,
                        step,
                        static_cast<float>(grad_scale)};
    if (s.master.empty())
      ops::adamw_step(dev, p.value, p.grad, s.m, s.v, Tensor{}, hp);
    else
      ops::adamw_step(dev, s.master, p.grad, s.m, s.v, p.value, hp);
  }
}

double grad_global_norm(Device& dev, const ParamRegistry& registry, Tensor scratch) {
  ops::sum_squares(dev, scratch, registry.flat_grads(), false);
  if (scratch.dtype == DType::f64) {
    double v = 0;
    dev.copy_to_host(&v, scratch);
    return std::sqrt(v);
  }
  float v = 0;
  dev.copy_to_host(&v, scratch);
  return std::sqrt(static_cast<double>(v));
}

}  // namespace tessera
