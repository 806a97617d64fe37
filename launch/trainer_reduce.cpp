// Trainer: everything after backward that crosses ranks — data-parallel buckets, the one
// finalize step, the global gradient norm, ZeRO-1's parameter gather and the assembly of the
// final weights from the owner of each element.
#include <cmath>
#include <cstring>
#include <memory>
#include <string>

#include "checkpoints/weights_file.h"
#include "launch/trainer.h"
#include "model/init.h"
#include "parallel/finalize_grads.h"
#include "parallel/mpi_comm.h"
#include "parallel/zero.h"
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

// Data-parallel buckets of about parallel.bucket_mb (parallel/grad_buckets.h), without ZeRO
// and with more than one data-parallel rank; and each block's parameters by layer, handed to
// the buckets when backward completes the block.
void Trainer::setup_buckets() {
  ParamRegistry& reg = model_->registry();
  const auto& params = reg.all();
  std::vector<std::pair<int64_t, int64_t>> ranges;
  params_of_layer_.assign(cfg_.model.n_layer, {});
  for (size_t i = 0; i < params.size(); ++i) {
    const int64_t lo = reg.flat_offset(params[i]);
    ranges.emplace_back(lo, lo + params[i].grad.numel());
    if (const int64_t l = layer_of(params[i].name); l >= 0) params_of_layer_[l].push_back(i);
  }
  const bool bucketed = topology_.dp() > 1 && cfg_.parallel.zero == 0;
  buckets_ = std::make_unique<GradBuckets>(std::move(ranges), cfg_.parallel.bucket_mb * 1024.0 * 1024.0,
                                           reg.flat_grads(), bucketed ? comms_.dp.get() : nullptr);
}

// Every reduction after backward (parallel/finalize_grads.h).
void Trainer::finalize_grads() {
  ParamRegistry& reg = model_->registry();
  GradFinalize f;
  f.tp = comms_.tp.get(), f.dp = comms_.dp.get(), f.embedding = comms_.embedding.get();
  for (const Param& p : reg.all()) f.tp_partial.push_back(p.grad_sum_tp ? p.grad : Tensor{});
  // Only a tied embedding has a copy on the last stage to keep equal with the first.
  if (cfg_.model.tie_embeddings && comms_.embedding->size() > 1) f.tied_embedding = reg.get("wte").grad;
  f.flat_grads = reg.flat_grads();
  f.zero_shard_grads = shard_grads_;
  tessera::finalize_grads(f, *buckets_);
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
  zero_gather_parameters(*comms_.dp, model_->registry().flat_values(),
                         ZeroShard{optimizer_->begin(), optimizer_->end()});
}

// The final weights, assembled one parameter at a time: each element comes from exactly one
// owner (the rule of counted_once, and the ZeRO shard holding it), in full precision from the
// master copy where there is one, and reaches rank 0 through a bitwise OR of every rank's
// buffer (zeros where it owns nothing), which writes the file. Every rank holds one global
// parameter at a time, in the file's dtype, never the whole model.
void Trainer::write_weights(const std::string& path, int64_t step) {
  ParamRegistry whole;
  Stage names(cfg_.model, stage_spec_whole(cfg_.model), TensorSlice{}, whole);
  const bool owner_dp = !shard_grads_.empty() || me_.dp == 0;
  const int64_t begin = optimizer_->begin(), end = optimizer_->end();
  const Tensor master = optimizer_->master();
  const DType dtype = compute_ == DType::f64 ? DType::f64 : DType::f32;
  const size_t elem = dtype_size(dtype);
  ParamRegistry& reg = model_->registry();
  std::unique_ptr<WeightsWriter> out;
  if (rank_ == 0) out = std::make_unique<WeightsWriter>(path, WeightsMeta{config_to_toml(cfg_), step, dtype == DType::f64 ? "f64" : "f32"});
  std::vector<char> buf, local;
  for (const Param& g : whole.all()) {
    buf.assign(static_cast<size_t>(g.global_shape.numel()) * elem, 0);
    const Param* p = reg.find(g.name);
    if (p && owner_dp && counted_once(*p)) {
      // This rank's elements of p: local indices [lo - o, hi - o).
      const int64_t o = reg.flat_offset(*p);
      const int64_t lo = std::max(o, begin), hi = std::min(o + p->value.numel(), end);
      if (lo < hi) {
        const Tensor src = master.empty() ? flat_slice(reg.flat_values(), lo, hi - lo)
                                          : flat_slice(master, lo - begin, hi - lo);
        TS_ASSERT(src.dtype == dtype, "the weights' full-precision copy is in the file's dtype");
        local.resize(static_cast<size_t>(hi - lo) * elem);
        dev_.copy_to_host(local.data(), src);
        if (p->shard_dim < 0)
          std::memcpy(buf.data() + (lo - o) * elem, local.data(), local.size());
        else
          for (int64_t i = lo - o; i < hi - o; ++i)
            std::memcpy(buf.data() + param_global_index(*p, i) * elem,
                        local.data() + (i - (lo - o)) * elem, elem);
      }
    }
    if (world_) world_->or_to_root(buf.data(), buf.size(), 0);
    if (out) out->write(g.name, g.global_shape, buf.data());
  }
  if (out) out->commit();
}

}  // namespace tessera
