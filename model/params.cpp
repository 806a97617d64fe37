#include "model/params.h"

#include "runtime/error.h"

namespace tessera {

Param& ParamRegistry::add(Param p) {
  if (p.local_shape.rank == 0) p.local_shape = p.global_shape;
  TS_ASSERT(!find(p.name), "parameter registered twice: " + p.name);
  params_.push_back(std::move(p));
  return params_.back();
}

void ParamRegistry::layout(Arena& values, Arena& grads, DType value_dtype, DType grad_dtype) {
  for (Param& p : params_) {
    p.value = values.take(p.local_shape, value_dtype);
    p.grad = grads.take(p.local_shape, grad_dtype);
  }
}

Param& ParamRegistry::get(const std::string& name) {
  for (Param& p : params_)
    if (p.name == name) return p;
  TS_ASSERT(false, "no parameter named " + name);
  return params_.front();
}

const Param* ParamRegistry::find(const std::string& name) const {
  for (const Param& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

int64_t ParamRegistry::local_numel() const {
  int64_t n = 0;
  for (const Param& p : params_) n += p.local_shape.numel();
  return n;
}

Tensor ParamRegistry::flat_grads() const {
  TS_ASSERT(!params_.empty(), "no parameters");
  const Tensor& first = params_.front().grad;
  const Tensor& last = params_.back().grad;
  const size_t bytes = static_cast<const char*>(last.data) + last.bytes() -
                       static_cast<const char*>(first.data);
  Tensor t = first;
  t.shape = Shape{static_cast<int64_t>(bytes / dtype_size(first.dtype))};
  return t;
}

}  // namespace tessera
