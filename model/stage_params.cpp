// Stage: parameter registration with this rank's tensor-parallel slice of each tensor.
#include <cmath>
#include <string>
#include <vector>

#include "model/stage.h"
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

// Splits dimension `dim` of p (made of parts of global sizes `parts`; empty: one) across the
// tp ranks.
Param& shard(Param& p, const TensorSlice& tp, int dim, std::vector<int64_t> parts = {}) {
  if (tp.size == 1) return p;
  p.local_shape = p.global_shape;
  p.local_shape.dims[dim] /= tp.size;
  p.shard_dim = dim;
  p.shard_parts = std::move(parts);
  p.shard_rank = tp.rank;
  p.shard_ranks = tp.size;
  return p;
}

}  // namespace

StageSpec stage_spec_whole(const ModelConfig& cfg) { return {0, cfg.n_layer, true, true}; }

StageSpec stage_spec_chunk(const ModelConfig& cfg, int chunk, int n_chunks) {
  const int64_t per = cfg.n_layer / n_chunks;
  return {chunk * per, per, chunk == 0, chunk == n_chunks - 1};
}

Stage::Stage(const ModelConfig& cfg, StageSpec spec, TensorSlice tp, ParamRegistry& reg)
    : cfg_(cfg), comp_(model_components(cfg)), spec_(spec), tp_(tp) {
  const int64_t C = cfg.d_model, F = cfg.ff(), Vp = cfg.padded_vocab(), HS = cfg.head_size();
  const int64_t Wq = cfg.n_head * HS, Wkv = cfg.kv_heads() * HS;
  TS_ASSERT(cfg.n_head % tp.size == 0 && cfg.kv_heads() % tp.size == 0 && F % tp.size == 0 &&
                Vp % tp.size == 0,
            "tensor-parallel degree must divide heads, key/value heads, d_ff and the padded vocabulary");
  heads_ = cfg.n_head / tp.size;
  vocab_rows_ = Vp / tp.size;
  attn_.q_heads = heads_;
  attn_.kv_heads = cfg.kv_heads() / tp.size;
  attn_.head_size = HS;
  if (comp_.position == Position::alibi) {  // slopes by global head index
    attn_.alibi_heads = cfg.n_head;
    attn_.alibi_first_head = tp.rank * heads_;
  }
  const bool sp = tp.splits_sequence();
  const bool layernorm = comp_.norm == Norm::layernorm, swiglu = comp_.activation == Activation::swiglu;
  const InitStds init = model_init_stds(cfg);  // model.init: matrices/embeddings, output projections
  const double std = init.weight, std_res = init.output;
  auto add = [&](Param p) -> Param& { return reg.add(std::move(p)); };
  // A norm's scale (ones) and, for LayerNorm, its shift (zeros).
  auto norm = [&](const std::string& name) {
    add(make(name + ".weight", {C}, ParamKind::norm, ParamInit::ones, 0)).grad_sum_tp = sp;
    if (layernorm) add(make(name + ".bias", {C}, ParamKind::norm, ParamInit::zeros, 0)).grad_sum_tp = sp;
  };
  const bool wants_wte = spec.has_embedding || (spec.has_head && cfg.tie_embeddings);
  if (wants_wte && !reg.find("wte")) {  // one copy when a rank holds both ends (pp = 1)
    Param p = make("wte", {Vp, C}, ParamKind::embedding, ParamInit::normal, std);
    p.init_rows = cfg.vocab_size;  // padding rows stay zero
    p.tied_copy = !spec.has_embedding;
    add(shard(p, tp, 0));
  }
  if (spec.has_embedding && comp_.position == Position::learned)
    add(make("wpe", {cfg.seq_len, C}, ParamKind::embedding, ParamInit::normal, std));
  if (spec.has_embedding && cfg.embedding_norm) norm("emb_ln");
  // Fused projections: q | k | v, and SwiGLU's gate | up, each part split across tp.
  const std::vector<int64_t> qkv_parts = {Wq, Wkv, Wkv};
  const std::vector<int64_t> fc_parts = swiglu ? std::vector<int64_t>{F, F} : std::vector<int64_t>{};
  const int64_t G = swiglu ? 2 * F : F;
  for (int64_t l = spec.first_layer; l < spec.first_layer + spec.n_layers; ++l) {
    const std::string pre = "h." + std::to_string(l) + ".";
    Param w;
    norm(pre + "ln_1");
    add(shard(w = make(pre + "attn.qkv.weight", {Wq + 2 * Wkv, C}, ParamKind::matrix, ParamInit::normal, std), tp, 0, qkv_parts));
    if (cfg.has_qkv_bias())
      add(shard(w = make(pre + "attn.qkv.bias", {Wq + 2 * Wkv}, ParamKind::bias, ParamInit::zeros, 0), tp, 0, qkv_parts));
    add(shard(w = make(pre + "attn.proj.weight", {C, Wq}, ParamKind::matrix, ParamInit::normal, std_res), tp, 1));
    if (cfg.bias) add(make(pre + "attn.proj.bias", {C}, ParamKind::bias, ParamInit::zeros, 0));
    norm(pre + "ln_2");
    add(shard(w = make(pre + "mlp.fc.weight", {G, C}, ParamKind::matrix, ParamInit::normal, std), tp, 0, fc_parts));
    if (cfg.bias)
      add(shard(w = make(pre + "mlp.fc.bias", {G}, ParamKind::bias, ParamInit::zeros, 0), tp, 0, fc_parts));
    add(shard(w = make(pre + "mlp.proj.weight", {C, F}, ParamKind::matrix, ParamInit::normal, std_res), tp, 1));
    if (cfg.bias) add(make(pre + "mlp.proj.bias", {C}, ParamKind::bias, ParamInit::zeros, 0));
  }
  if (spec.has_head) {
    norm("ln_f");
    if (!cfg.tie_embeddings) {
      Param p = make("lm_head.weight", {Vp, C}, ParamKind::matrix, ParamInit::normal, std);
      p.init_rows = cfg.vocab_size;
      add(shard(p, tp, 0));
    }
  }
}

void Stage::bind(ParamRegistry& reg) {
  auto opt = [&](const std::string& n) { return const_cast<Param*>(reg.find(n)); };
  wte_ = spec_.has_embedding || (spec_.has_head && cfg_.tie_embeddings) ? opt("wte") : nullptr;
  wpe_ = spec_.has_embedding ? opt("wpe") : nullptr;
  emb_ln_w_ = spec_.has_embedding ? opt("emb_ln.weight") : nullptr;
  emb_ln_b_ = spec_.has_embedding ? opt("emb_ln.bias") : nullptr;
  lnf_w_ = spec_.has_head ? opt("ln_f.weight") : nullptr;
  lnf_b_ = spec_.has_head ? opt("ln_f.bias") : nullptr;
  lm_head_ = !spec_.has_head ? nullptr : cfg_.tie_embeddings ? wte_ : opt("lm_head.weight");
  blocks_.clear();
  for (int64_t l = spec_.first_layer; l < spec_.first_layer + spec_.n_layers; ++l) {
    const std::string p = "h." + std::to_string(l) + ".";
    auto g = [&](const char* n) { return &reg.get(p + n); };
    auto o = [&](const char* n) { return opt(p + n); };
    blocks_.push_back({g("ln_1.weight"), o("ln_1.bias"), g("attn.qkv.weight"), o("attn.qkv.bias"),
                       g("attn.proj.weight"), o("attn.proj.bias"), g("ln_2.weight"), o("ln_2.bias"),
                       g("mlp.fc.weight"), o("mlp.fc.bias"), g("mlp.proj.weight"), o("mlp.proj.bias")});
  }
}

}  // namespace tessera
