// GptStage: parameter registration with this rank's tensor-parallel slice of each tensor.
#include <cmath>
#include <string>

#include "model/gpt.h"
#include "runtime/error.h"

namespace tessera {
namespace {

Param make(const std::string& name, Shape shape, ParamKind kind, ParamInit init, double std) {
  Param p;
  p.name = name;
  p.global_shape = shape;
  p.kind = kind;
  p.init = init;
  p.init_std = std;
  return p;
}

// Splits dimension `dim` of p (made of `parts` equal parts) across the tp ranks.
Param& shard(Param& p, const TensorSlice& tp, int dim, int64_t parts = 1) {
  if (tp.size == 1) return p;
  p.local_shape = p.global_shape;
  p.local_shape.dims[dim] /= tp.size;
  p.shard_dim = dim;
  p.shard_parts = parts;
  p.shard_offset = tp.rank * (p.global_shape[dim] / parts / tp.size);
  return p;
}

}  // namespace

StageSpec stage_spec_whole(const ModelConfig& cfg) { return {0, cfg.n_layer, true, true}; }

StageSpec stage_spec_chunk(const ModelConfig& cfg, int chunk, int n_chunks) {
  const int64_t per = cfg.n_layer / n_chunks;
  return {chunk * per, per, chunk == 0, chunk == n_chunks - 1};
}

GptStage::GptStage(const ModelConfig& cfg, StageSpec spec, TensorSlice tp, ParamRegistry& reg)
    : cfg_(cfg), spec_(spec), tp_(tp) {
  const int64_t C = cfg.d_model, F = cfg.ff(), Vp = cfg.padded_vocab();
  TS_ASSERT(cfg.n_head % tp.size == 0 && F % tp.size == 0 && Vp % tp.size == 0,
            "tensor-parallel degree must divide heads, d_ff and the padded vocabulary");
  heads_ = cfg.n_head / tp.size;
  vocab_rows_ = Vp / tp.size;
  const bool sp = tp.sequence_parallel && tp.size > 1;
  // GPT-2 initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2 L).
  const double std = 0.02, std_res = 0.02 / std::sqrt(2.0 * static_cast<double>(cfg.n_layer));
  auto add = [&](Param p) -> Param& { return reg.add(std::move(p)); };
  auto norm = [&](const std::string& name, ParamInit init) {
    add(make(name, {C}, ParamKind::norm, init, 0)).grad_sum_tp = sp;
  };
  const bool wants_wte = spec.has_embedding || (spec.has_head && cfg.tie_embeddings);
  if (wants_wte && !reg.find("wte")) {  // one copy when a rank holds both ends (pp = 1)
    Param p = make("wte", {Vp, C}, ParamKind::embedding, ParamInit::normal, std);
    p.init_rows = cfg.vocab_size;  // padding rows stay zero
    p.tied_copy = !spec.has_embedding;
    add(shard(p, tp, 0));
  }
  if (spec.has_embedding)
    add(make("wpe", {cfg.seq_len, C}, ParamKind::embedding, ParamInit::normal, std));
  for (int64_t l = spec.first_layer; l < spec.first_layer + spec.n_layers; ++l) {
    const std::string pre = "h." + std::to_string(l) + ".";
    Param w;
    norm(pre + "ln_1.weight", ParamInit::ones);
    norm(pre + "ln_1.bias", ParamInit::zeros);
    add(shard(w = make(pre + "attn.qkv.weight", {3 * C, C}, ParamKind::matrix, ParamInit::normal, std), tp, 0, 3));
    add(shard(w = make(pre + "attn.qkv.bias", {3 * C}, ParamKind::bias, ParamInit::zeros, 0), tp, 0, 3));
    add(shard(w = make(pre + "attn.proj.weight", {C, C}, ParamKind::matrix, ParamInit::normal, std_res), tp, 1));
    add(make(pre + "attn.proj.bias", {C}, ParamKind::bias, ParamInit::zeros, 0));
    norm(pre + "ln_2.weight", ParamInit::ones);
    norm(pre + "ln_2.bias", ParamInit::zeros);
    add(shard(w = make(pre + "mlp.fc.weight", {F, C}, ParamKind::matrix, ParamInit::normal, std), tp, 0));
    add(shard(w = make(pre + "mlp.fc.bias", {F}, ParamKind::bias, ParamInit::zeros, 0), tp, 0));
    add(shard(w = make(pre + "mlp.proj.weight", {C, F}, ParamKind::matrix, ParamInit::normal, std_res), tp, 1));
    add(make(pre + "mlp.proj.bias", {C}, ParamKind::bias, ParamInit::zeros, 0));
  }
  if (spec.has_head) {
    norm("ln_f.weight", ParamInit::ones);
    norm("ln_f.bias", ParamInit::zeros);
    if (!cfg.tie_embeddings) {
      Param p = make("lm_head.weight", {Vp, C}, ParamKind::matrix, ParamInit::normal, std);
      p.init_rows = cfg.vocab_size;
      add(shard(p, tp, 0));
    }
  }
}

void GptStage::bind(ParamRegistry& reg) {
  auto opt = [&](const char* n) { return const_cast<Param*>(reg.find(n)); };
  wte_ = spec_.has_embedding || (spec_.has_head && cfg_.tie_embeddings) ? opt("wte") : nullptr;
  wpe_ = spec_.has_embedding ? opt("wpe") : nullptr;
  lnf_w_ = spec_.has_head ? opt("ln_f.weight") : nullptr;
  lnf_b_ = spec_.has_head ? opt("ln_f.bias") : nullptr;
  lm_head_ = !spec_.has_head ? nullptr : cfg_.tie_embeddings ? wte_ : opt("lm_head.weight");
  blocks_.clear();
  for (int64_t l = spec_.first_layer; l < spec_.first_layer + spec_.n_layers; ++l) {
    const std::string p = "h." + std::to_string(l) + ".";
    auto g = [&](const char* n) { return &reg.get(p + n); };
    blocks_.push_back({g("ln_1.weight"), g("ln_1.bias"), g("attn.qkv.weight"),
                       g("attn.qkv.bias"), g("attn.proj.weight"), g("attn.proj.bias"),
                       g("ln_2.weight"), g("ln_2.bias"), g("mlp.fc.weight"), g("mlp.fc.bias"),
                       g("mlp.proj.weight"), g("mlp.proj.bias")});
  }
}

}  // namespace tessera
