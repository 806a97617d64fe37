#include "optim/adamw.h"

#include <algorithm>
#include <cmath>

#include "runtime/error.h"
#include "runtime/ops.h"

namespace tessera {

AdamW::AdamW(const OptimConfig& cfg, ParamRegistry& registry, DType master_dtype, int64_t begin,
             int64_t end)
    : cfg_(cfg), registry_(registry), master_dtype_(master_dtype), begin_(begin), end_(end) {}

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
  const int64_t total = registry_.flat_values().numel();
  if (end_ < 0) end_ = total;
  TS_ASSERT(0 <= begin_ && begin_ <= end_ && end_ <= total, "AdamW range outside the registry");
  pieces_.clear();
  for (Param& p : registry_.all()) {
    const int64_t o = registry_.flat_offset(p);
    const int64_t lo = std::max(o, begin_), hi = std::min(o + p.value.numel(), end_);
    if (lo < hi) pieces_.push_back({&p, lo, hi});
  }
  const int64_t n = end_ - begin_;
  const bool separate = registry_.flat_values().dtype != master_dtype_;
  master_ = separate ? arena.take({n}, master_dtype_) : Tensor{};
  m_ = arena.take({n}, master_dtype_);
  v_ = arena.take({n}, master_dtype_);
}

void AdamW::init_master(Device& dev) {
  if (master_.empty()) return;
  ops::convert(dev, master_, flat_slice(registry_.flat_values(), begin_, end_ - begin_));
}

void AdamW::step(Device& dev, double lr, int64_t step, double grad_scale, Tensor grads) {
  if (grads.empty()) grads = flat_slice(registry_.flat_grads(), begin_, end_ - begin_);
  const Tensor values = registry_.flat_values();
  for (const Piece& piece : pieces_) {
    const int64_t n = piece.hi - piece.lo, at = piece.lo - begin_;
    ops::AdamWParams hp{static_cast<float>(lr),
                        static_cast<float>(cfg_.beta1),
                        static_cast<float>(cfg_.beta2),
                        static_cast<float>(cfg_.eps),
                        decays(*piece.param) ? static_cast<float>(cfg_.weight_decay) : 0.0f,
                        step,
                        static_cast<float>(grad_scale)};
    const Tensor value = flat_slice(values, piece.lo, n), g = flat_slice(grads, at, n);
    const Tensor m = flat_slice(m_, at, n), v = flat_slice(v_, at, n);
    if (master_.empty())
      ops::adamw_step(dev, value, g, m, v, Tensor{}, hp);
    else
      ops::adamw_step(dev, flat_slice(master_, at, n), g, m, v, value, hp);
  }
}

double grad_sum_squares(Device& dev, const std::vector<Tensor>& pieces, Tensor scratch) {
  if (pieces.empty()) return 0.0;
  for (size_t i = 0; i < pieces.size(); ++i) ops::sum_squares(dev, scratch, pieces[i], i > 0);
  if (scratch.dtype == DType::f64) {
    double v = 0;
    dev.copy_to_host(&v, scratch);
    return v;
  }
  float v = 0;
  dev.copy_to_host(&v, scratch);
  return static_cast<double>(v);
}

double grad_global_norm(Device& dev, const ParamRegistry& registry, Tensor scratch) {
  return std::sqrt(grad_sum_squares(dev, {registry.flat_grads()}, scratch));
}

}  // namespace tessera
