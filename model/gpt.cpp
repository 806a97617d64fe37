// GptStage: parameter registration, activation layout, forward and backward.
#include "model/gpt.h"

#include <cmath>
#include <string>

#include "runtime/error.h"
#include "runtime/ops.h"

namespace tessera {
namespace {

DType stats_dtype(DType compute) { return compute == DType::bf16 ? DType::f32 : compute; }

Param make(const std::string& name, Shape shape, ParamKind kind, ParamInit init, double std) {
  Param p;
  p.name = name;
  p.global_shape = shape;
  p.kind = kind;
  p.init = init;
  p.init_std = std;
  return p;
}

// Sites of dropout inside a block, for the mask stream ids.
enum DropoutSite { kEmbedding = 0, kAttention = 1, kMlp = 2 };

}  // namespace

StageSpec stage_spec_whole(const ModelConfig& cfg) { return {0, cfg.n_layer, true, true}; }

GptStage::GptStage(const ModelConfig& cfg, StageSpec spec, ParamRegistry& reg)
    : cfg_(cfg), spec_(spec) {
  const int64_t C = cfg.d_model, F = cfg.ff(), Vp = cfg.padded_vocab();
  // GPT-2 initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2 L).
  const double std = 0.02, std_res = 0.02 / std::sqrt(2.0 * static_cast<double>(cfg.n_layer));
  if (spec.has_embedding || (spec.has_head && cfg.tie_embeddings)) {
    Param& wte = reg.add(make("wte", {Vp, C}, ParamKind::embedding, ParamInit::normal, std));
    wte.init_rows = cfg.vocab_size;  // padding rows stay zero
  }
  if (spec.has_embedding)
    reg.add(make("wpe", {cfg.seq_len, C}, ParamKind::embedding, ParamInit::normal, std));
  for (int64_t l = spec.first_layer; l < spec.first_layer + spec.n_layers; ++l) {
    const std::string p = "h." + std::to_string(l) + ".";
    reg.add(make(p + "ln_1.weight", {C}, ParamKind::norm, ParamInit::ones, 0));
    reg.add(make(p + "ln_1.bias", {C}, ParamKind::norm, ParamInit::zeros, 0));
    reg.add(make(p + "attn.qkv.weight", {3 * C, C}, ParamKind::matrix, ParamInit::normal, std));
    reg.add(make(p + "attn.qkv.bias", {3 * C}, ParamKind::bias, ParamInit::zeros, 0));
    reg.add(make(p + "attn.proj.weight", {C, C}, ParamKind::matrix, ParamInit::normal, std_res));
    reg.add(make(p + "attn.proj.bias", {C}, ParamKind::bias, ParamInit::zeros, 0));
    reg.add(make(p + "ln_2.weight", {C}, ParamKind::norm, ParamInit::ones, 0));
    reg.add(make(p + "ln_2.bias", {C}, ParamKind::norm, ParamInit::zeros, 0));
    reg.add(make(p + "mlp.fc.weight", {F, C}, ParamKind::matrix, ParamInit::normal, std));
    reg.add(make(p + "mlp.fc.bias", {F}, ParamKind::bias, ParamInit::zeros, 0));
    reg.add(make(p + "mlp.proj.weight", {C, F}, ParamKind::matrix, ParamInit::normal, std_res));
    reg.add(make(p + "mlp.proj.bias", {C}, ParamKind::bias, ParamInit::zeros, 0));
  }
  if (spec.has_head) {
    reg.add(make("ln_f.weight", {C}, ParamKind::norm, ParamInit::ones, 0));
    reg.add(make("ln_f.bias", {C}, ParamKind::norm, ParamInit::zeros, 0));
    if (!cfg.tie_embeddings) {
      Param& head = reg.add(make("lm_head.weight", {Vp, C}, ParamKind::matrix, ParamInit::normal, std));
      head.init_rows = cfg.vocab_size;
    }
  }
}

void GptStage::bind(ParamRegistry& reg) {
  auto opt = [&](const char* n) { return const_cast<Param*>(reg.find(n)); };
  wte_ = opt("wte");
  wpe_ = opt("wpe");
  lnf_w_ = opt("ln_f.weight");
  lnf_b_ = opt("ln_f.bias");
  lm_head_ = cfg_.tie_embeddings ? wte_ : opt("lm_head.weight");
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

void GptStage::layout_activations(Arena& arena, const RunShape& s) {
  shape_ = s;
  const int64_t B = s.micro_batch, T = s.seq_len, C = cfg_.d_model, F = cfg_.ff();
  const DType dt = s.compute, st = stats_dtype(dt);
  const auto aux = ops::attention_aux_shape(s.device, dt, B, T, cfg_.n_head);
  auto block = [&]() {
    BlockActs a;
    a.ln1 = arena.take({B, T, C}, dt);
    a.ln1_mean = arena.take({B, T}, st);
    a.ln1_rstd = arena.take({B, T}, st);
    a.qkv = arena.take({B, T, 3 * C}, dt);
    a.atty = arena.take({B, T, C}, dt);
    a.att_aux = arena.take(aux.shape, aux.dtype);
    a.res2 = arena.take({B, T, C}, dt);
    a.ln2 = arena.take({B, T, C}, dt);
    a.ln2_mean = arena.take({B, T}, st);
    a.ln2_rstd = arena.take({B, T}, st);
    a.fch = arena.take({B, T, F}, dt);
    a.fch_gelu = arena.take({B, T, F}, dt);
    return a;
  };
  slots_.assign(s.slots, SlotActs{});
  const int64_t L = spec_.n_layers;
  if (s.recompute == Recompute::full) {
    BlockActs shared = block();  // one set, recomputed per layer in backward
    for (SlotActs& slot : slots_) slot.blocks.assign(1, shared);
  }
  for (SlotActs& slot : slots_) {
    for (int64_t l = 0; l <= L; ++l) slot.residual.push_back(arena.take({B, T, C}, dt));
    if (s.recompute == Recompute::none)
      for (int64_t l = 0; l < L; ++l) slot.blocks.push_back(block());
    if (spec_.has_head) {
      slot.lnf = arena.take({B, T, C}, dt);
      slot.lnf_mean = arena.take({B, T}, st);
      slot.lnf_rstd = arena.take({B, T}, st);
      slot.logits = arena.take({B, T, cfg_.padded_vocab()}, dt);
    }
  }
  scratch_.proj = arena.take({B, T, C}, dt);
  scratch_.dres = arena.take({B, T, C}, dt);
  scratch_.dc = arena.take({B, T, C}, dt);
  scratch_.dc2 = arena.take({B, T, C}, dt);
  scratch_.dff = arena.take({B, T, F}, dt);
  scratch_.d3c = arena.take({B, T, 3 * C}, dt);
  scratch_.dlnf = arena.take({B, T, C}, dt);
}

const GptStage::BlockActs& GptStage::block_acts(int slot, int64_t l) const {
  const SlotActs& s = slots_[slot];
  return s.blocks.size() == 1 && shape_.recompute == Recompute::full ? s.blocks[0] : s.blocks[l];
}

Tensor GptStage::output(int slot) const { return slots_[slot].residual.back(); }
Tensor GptStage::logits(int slot) const { return slots_[slot].logits; }

uint64_t GptStage::dropout_stream(const DropoutKey& key, int64_t layer, int site) const {
  // Distinct stream per (step, micro-batch, layer, site); the element index inside the stream
  // is the position within the micro-batch.
  uint64_t h = 0x9E3779B97F4A7C15ull;
  for (uint64_t v : {static_cast<uint64_t>(key.step), static_cast<uint64_t>(key.first_sample),
                     static_cast<uint64_t>(layer + 1), static_cast<uint64_t>(site)})
    h = (h ^ v) * 0xBF58476D1CE4E5B9ull + (h >> 29);
  return h;
}

void GptStage::block_forward(Device& dev, int64_t l, const BlockActs& a, Tensor x, Tensor out,
                             const DropoutKey& key, bool training) {
  const BlockParams& w = blocks_[l];
  const float eps = static_cast<float>(cfg_.layernorm_eps);
  const float p = training ? static_cast<float>(cfg_.dropout) : 0.0f;
  const int64_t layer = spec_.first_layer + l;
  ops::layernorm_forward(dev, a.ln1, a.ln1_mean, a.ln1_rstd, x, w.ln1_w->value, w.ln1_b->value, eps);
  ops::matmul_forward(dev, a.qkv, a.ln1, w.qkv_w->value, w.qkv_b->value);
  ops::attention_forward(dev, a.atty, a.att_aux, a.qkv, cfg_.n_head);
  ops::matmul_forward(dev, scratch_.proj, a.atty, w.proj_w->value, w.proj_b->value);
  ops::dropout_forward(dev, scratch_.proj, scratch_.proj, p, key.seed, dropout_stream(key, layer, kAttention));
  ops::add(dev, a.res2, x, scratch_.proj);
  ops::layernorm_forward(dev, a.ln2, a.ln2_mean, a.ln2_rstd, a.res2, w.ln2_w->value, w.ln2_b->value, eps);
  ops::matmul_bias_gelu_forward(dev, a.fch_gelu, a.fch, a.ln2, w.fc_w->value, w.fc_b->value);
  ops::matmul_forward(dev, scratch_.proj, a.fch_gelu, w.fcp_w->value, w.fcp_b->value);
  ops::dropout_forward(dev, scratch_.proj, scratch_.proj, p, key.seed, dropout_stream(key, layer, kMlp));
  ops::add(dev, out, a.res2, scratch_.proj);
}

// dres (B,T,C) holds d(block output) on entry and d(block input) on exit.
void GptStage::block_backward(Device& dev, int64_t l, const BlockActs& a, Tensor x, Tensor dres,
                              const DropoutKey& key) {
  const BlockParams& w = blocks_[l];
  const float p = static_cast<float>(cfg_.dropout);
  const int64_t layer = spec_.first_layer + l;
  Tensor dc = scratch_.dc, dc2 = scratch_.dc2, dff = scratch_.dff, d3c = scratch_.d3c;
  // MLP branch: out = res2 + dropout(fc_proj(gelu(fc(ln2(res2)))))
  ops::dropout_backward(dev, dc, dres, p, key.seed, dropout_stream(key, layer, kMlp));
  ops::matmul_backward(dev, dff, w.fcp_w->grad, w.fcp_b->grad, dc, a.fch_gelu, w.fcp_w->value);
  ops::gelu_backward(dev, dff, a.fch, dff);
  ops::matmul_backward(dev, dc, w.fc_w->grad, w.fc_b->grad, dff, a.ln2, w.fc_w->value);
  ops::layernorm_backward(dev, dc2, w.ln2_w->grad, w.ln2_b->grad, dc, a.res2, w.ln2_w->value,
                          a.ln2_mean, a.ln2_rstd);
  ops::add_inplace(dev, dres, dc2);
  // Attention branch: res2 = x + dropout(proj(attn(qkv(ln1(x)))))
  ops::dropout_backward(dev, dc, dres, p, key.seed, dropout_stream(key, layer, kAttention));
  ops::matmul_backward(dev, dc2, w.proj_w->grad, w.proj_b->grad, dc, a.atty, w.proj_w->value);
  ops::attention_backward(dev, d3c, dc2, a.qkv, a.atty, a.att_aux, cfg_.n_head);
  ops::matmul_backward(dev, dc, w.qkv_w->grad, w.qkv_b->grad, d3c, a.ln1, w.qkv_w->value);
  ops::layernorm_backward(dev, dc2, w.ln1_w->grad, w.ln1_b->grad, dc, x, w.ln1_w->value,
                          a.ln1_mean, a.ln1_rstd);
  ops::add_inplace(dev, dres, dc2);
}

void GptStage::forward(Device& dev, int slot, Tensor tokens, Tensor input, Tensor targets,
                       Tensor losses, const DropoutKey& key, bool training, float dloss) {
  SlotActs& s = slots_[slot];
  if (spec_.has_embedding) {
    ops::encoder_forward(dev, s.residual[0], tokens, wte_->value, wpe_->value);
    const float p = training ? static_cast<float>(cfg_.dropout) : 0.0f;
    ops::dropout_forward(dev, s.residual[0], s.residual[0], p, key.seed,
                         dropout_stream(key, -1, kEmbedding));
  } else {
    ops::convert(dev, s.residual[0], input);
  }
  for (int64_t l = 0; l < spec_.n_layers; ++l)
    block_forward(dev, l, block_acts(slot, l), s.residual[l], s.residual[l + 1], key, training);
  if (!spec_.has_head) return;
  const int64_t B = shape_.micro_batch, T = shape_.seq_len;
  ops::layernorm_forward(dev, s.lnf, s.lnf_mean, s.lnf_rstd, s.residual.back(), lnf_w_->value,
                         lnf_b_->value, static_cast<float>(cfg_.layernorm_eps));
  ops::matmul_forward(dev, s.logits, s.lnf, lm_head_->value, Tensor{});
  if (targets.empty()) return;  // generation: logits only
  Tensor flat_logits = s.logits.view({B * T, cfg_.padded_vocab()});
  Tensor flat_targets = targets.view({B * T});
  if (dloss != 0.0f)
    ops::cross_entropy_forward_backward(dev, losses, flat_logits, flat_targets, cfg_.vocab_size, dloss);
  else
    ops::cross_entropy_forward(dev, losses, flat_logits, flat_targets, cfg_.vocab_size);
}

Tensor GptStage::backward(Device& dev, int slot, Tensor tokens, Tensor dout, const DropoutKey& key) {
  SlotActs& s = slots_[slot];
  Tensor dres = scratch_.dres;
  if (spec_.has_head) {
    // logits now hold dlogits (written by the fused loss in forward).
    ops::matmul_backward(dev, scratch_.dlnf, lm_head_->grad, Tensor{}, s.logits, s.lnf, lm_head_->value);
    ops::layernorm_backward(dev, dres, lnf_w_->grad, lnf_b_->grad, scratch_.dlnf, s.residual.back(),
                            lnf_w_->value, s.lnf_mean, s.lnf_rstd);
  } else {
    ops::convert(dev, dres, dout);
  }
  for (int64_t l = spec_.n_layers - 1; l >= 0; --l) {
    const BlockActs& a = block_acts(slot, l);
    if (shape_.recompute == Recompute::full)
      block_forward(dev, l, a, s.residual[l], scratch_.dc, key, true);  // output unused
    block_backward(dev, l, a, s.residual[l], dres, key);
  }
  if (spec_.has_embedding) {
    ops::dropout_backward(dev, dres, dres, static_cast<float>(cfg_.dropout), key.seed,
                          dropout_stream(key, -1, kEmbedding));
    ops::encoder_backward(dev, wte_->grad, wpe_->grad, dres, tokens);
  }
  return dres;
}

}  // namespace tessera
