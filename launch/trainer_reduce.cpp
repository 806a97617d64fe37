// Trainer: everything after backward that crosses ranks — data-parallel buckets, the one
// finalize step, the global gradient norm, ZeRO-1's parameter gather and the assembly of the
// final weights from the owner of each element.
#include <cmath>
#include <string>

#include "checkpoints/weights_file.h"
#include "launch/trainer.h"
#include "model/init.h"
#include "runtime/error.h"
#include "runtime/ops.h"

namespace tessera {
namespace {

// Global layer index of a block parameter ("h.12.attn..." -> 12), -1 otherwise.
int64_t layer_of(const std::string& name) {
  if (name.rfind("h.", 0) != 0) return -1;
  return std::stoll(name.substr(2, name.find('.', 2) - 2));
}

}  // namespace

// Data-parallel buckets: contiguous flat ranges of about parallel.bucket_mb, formed from the
// last parameter backwards (the order gradients complete), each all-reduced as soon as all
// its parameters are final.
void Trainer::setup_buckets() {
  ParamRegistry& reg = model_->registry();
  auto& params = reg.all();
  bucket_of_.assign(params.size(), -1);
  done_.assign(params.size(), 0);
  params_of_layer_.assign(cfg_.model.n_layer, {});
  for (size_t i = 0; i < params.size(); ++i)
    if (const int64_t l = layer_of(params[i].name); l >= 0) params_of_layer_[l].push_back(i);
  buckets_.clear();
  if (topology_.dp() == 1 || cfg_.parallel.zero > 0) return;
  const double limit = cfg_.parallel.bucket_mb * 1024.0 * 1024.0;
  const size_t elem = dtype_size(grad_dtype_);
  for (size_t k = params.size(); k-- > 0;) {
    const Param& p = params[k];
    const int64_t lo = reg.flat_offset(p), hi = lo + p.grad.numel();
    if (buckets_.empty() || static_cast<double>(buckets_.back().end - buckets_.back().begin) * elem >= limit)
      buckets_.push_back({lo, hi, 0, -1});
    Bucket& b = buckets_.back();
    b.begin = lo;
    bucket_of_[k] = static_cast<int>(buckets_.size() - 1);
  }
}

void Trainer::param_done(size_t i) {
  done_[i] = 1;
  const int b = bucket_of_[i];
  if (b < 0) return;
  Bucket& bucket = buckets_[b];
  if (--bucket.pending == 0)
    bucket.handle = comms_.dp->all_reduce_start(
        flat_slice(model_->registry().flat_grads(), bucket.begin, bucket.end - bucket.begin));
}

// Every reduction after backward, in one place: tensor-parallel partial sums, the tied
// embedding between first and last stage, then data parallel (buckets, or ZeRO's
// reduce-scatter).
void Trainer::finalize_grads() {
  ParamRegistry& reg = model_->registry();
  auto& params = reg.all();
  for (size_t i = 0; i < params.size(); ++i)
    if (!done_[i] && params[i].grad_sum_tp) comms_.tp->all_reduce(params[i].grad);
  if (comms_.embedding->size() > 1) comms_.embedding->all_reduce(reg.get("wte").grad);
  for (size_t i = 0; i < params.size(); ++i)
    if (!done_[i]) param_done(i);
  if (!shard_grads_.empty()) comms_.dp->reduce_scatter(shard_grads_, reg.flat_grads());
  for (Bucket& b : buckets_) comms_.dp->finish(b.handle);
}

// A parameter whose gradient this rank counts in the global norm (and whose value it writes
// in the final weights): one tensor-parallel rank for replicated ones, never a tied copy.
bool Trainer::counted_once(const Param& p) const {
  return !p.tied_copy && (p.shard_dim >= 0 || me_.tp == 0);
}

void Trainer::world_sum(double* v, int64_t n) {
  comms_.world->all_reduce(Tensor{v, DType::f64, DeviceKind::cpu, Shape{n}});
}

double Trainer::world_sum(double v) {
  world_sum(&v, 1);
  return v;
}

// Every gradient element exactly once across tp x pp x dp: ZeRO ranks count their own shard,
// otherwise data-parallel rank 0 counts the (identical) reduced gradients.
double Trainer::global_grad_norm() {
  ParamRegistry& reg = model_->registry();
  std::vector<Tensor> pieces;
  if (!shard_grads_.empty()) {
    for (const AdamW::Piece& piece : optimizer_->pieces())
      if (counted_once(*piece.param))
        pieces.push_back(flat_slice(shard_grads_, piece.lo - optimizer_->begin(), piece.hi - piece.lo));
  } else if (me_.dp == 0) {
    for (const Param& p : reg.all())
      if (counted_once(p)) pieces.push_back(flat_slice(reg.flat_grads(), reg.flat_offset(p), p.grad.numel()));
  }
  return std::sqrt(world_sum(grad_sum_squares(dev_, pieces, norm_scratch_)));
}

// ZeRO-1: each rank updated its shard; every rank of the dp group gets all of them back.
void Trainer::gather_parameters() {
  if (shard_grads_.empty()) return;
  const Tensor values = model_->registry().flat_values();
  const int64_t n = optimizer_->end() - optimizer_->begin();
  comms_.dp->all_gather(values, flat_slice(values, optimizer_->begin(), n));
}

// The final weights, assembled from every rank: each element comes from exactly one owner
// (the rule of counted_once, and the ZeRO shard holding it), in full precision from the
// master copy where there is one; rank 0 writes the file.
void Trainer::write_weights(const std::string& path, int64_t step) {
  ParamRegistry whole;
  GptStage names(cfg_.model, stage_spec_whole(cfg_.model), TensorSlice{}, whole);
  const bool owner_dp = !shard_grads_.empty() || me_.dp == 0;
  const int64_t begin = optimizer_->begin(), end = optimizer_->end();
  std::vector<double> master;
  if (!optimizer_->master().empty()) master = tensor_to_host_f64(dev_, optimizer_->master());
  ParamRegistry& reg = model_->registry();
  std::vector<std::vector<double>> host;
  for (Param& g : whole.all()) {
    std::vector<double> buf(g.global_shape.numel(), 0.0);
    const Param* p = reg.find(g.name);
    if (p && owner_dp && counted_once(*p)) {
      const std::vector<double> local = tensor_to_host_f64(dev_, p->value);
      const int64_t o = reg.flat_offset(*p);
      for (int64_t i = 0; i < static_cast<int64_t>(local.size()); ++i) {
        const int64_t f = o + i;
        if (f < begin || f >= end) continue;
        buf[param_global_index(*p, i)] = master.empty() ? local[i] : master[f - begin];
      }
    }
    if (topology_.world() > 1) {
      Tensor t{buf.data(), DType::f64, DeviceKind::cpu, Shape{static_cast<int64_t>(buf.size())}};
      comms_.world->all_reduce(t);
    }
    host.push_back(std::move(buf));
  }
  if (rank_ != 0) return;
  for (size_t i = 0; i < host.size(); ++i)
    whole.all()[i].value = Tensor{host[i].data(), DType::f64, DeviceKind::cpu, whole.all()[i].global_shape};
  auto cpu = Device::create(DeviceKind::cpu);
  WeightsMeta meta{config_to_toml(cfg_), step, compute_ == DType::f64 ? "f64" : "f32"};
  weights_save(path, *cpu, whole, {}, meta);
}

}  // namespace tessera
