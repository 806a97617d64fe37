#include "model/params.h"

#include <algorithm>

#include "runtime/error.h"

namespace tessera {

Param& ParamRegistry::add(Param p) {
  if (p.local_shape.rank == 0) p.local_shape = p.global_shape;
  TS_ASSERT(!find(p.name), "parameter registered twice: " + p.name);
  params_.push_back(std::move(p));
  return params_.back();
}

void ParamRegistry::layout(Arena& values, Arena& grads, DType value_dtype, DType grad_dtype,
                           int64_t flat_multiple) {
  auto round_up = [](int64_t n, int64_t m) { return (n + m - 1) / m * m; };
  int64_t total = 0;
  for (const Param& p : params_) total += round_up(p.local_shape.numel(), kAlignElems);
  total = round_up(std::max<int64_t>(total, 1), kAlignElems * flat_multiple);
  // kAlignElems elements are a multiple of the arena's 256-byte alignment for every dtype, so
  // one take per arena and views inside it give identical element offsets.
  flat_values_ = values.take({total}, value_dtype);
  flat_grads_ = grads.take({total}, grad_dtype);
  int64_t offset = 0;
  for (Param& p : params_) {
    p.value = flat_slice(flat_values_, offset, p.local_shape.numel()).view(p.local_shape);
    p.grad = flat_slice(flat_grads_, offset, p.local_shape.numel()).view(p.local_shape);
    offset += round_up(p.local_shape.numel(), kAlignElems);
  }
}

int64_t ParamRegistry::flat_offset(const Param& p) const {
  return (static_cast<const char*>(p.grad.data) - static_cast<const char*>(flat_grads_.data)) /
         static_cast<int64_t>(dtype_size(p.grad.dtype));
}

Tensor flat_slice(const Tensor& t, int64_t begin, int64_t count) {
  Tensor s = t;
  s.data = t.data ? static_cast<char*>(t.data) + begin * static_cast<int64_t>(dtype_size(t.dtype))
                  : nullptr;
  s.shape = Shape{count};
  return s;
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


namespace {

std::vector<int64_t> parts_of(const Param& p) {
  if (!p.shard_parts.empty()) return p.shard_parts;
  return {p.global_shape[p.shard_dim]};
}

}  // namespace

int64_t param_shard_global(const Param& p, int64_t j) {
  int64_t local_start = 0, global_start = 0;
  for (int64_t n : parts_of(p)) {
    const int64_t local = n / p.shard_ranks;
    if (j < local_start + local) return global_start + p.shard_rank * local + (j - local_start);
    local_start += local;
    global_start += n;
  }
  TS_ASSERT(false, p.name + ": index outside the sharded dimension");
  return -1;
}

int64_t param_shard_part_end(const Param& p, int64_t j) {
  int64_t local_end = 0;
  for (int64_t n : parts_of(p))
    if (j < (local_end += n / p.shard_ranks)) return local_end;
  TS_ASSERT(false, p.name + ": index outside the sharded dimension");
  return -1;
}

bool param_shard_divides(const Param& p, int ranks) {
  if (p.shard_dim < 0) return false;
  for (int64_t n : parts_of(p))
    if (n % ranks != 0) return false;
  return true;
}

}  // namespace tessera
