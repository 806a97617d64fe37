// Stage: incremental decoding with key/value caches (generation). The same components as the
// training forward in stage.cpp (norm_forward, mlp_forward), one token at a time; only the
// attention reads its keys and values from the caches instead of the sequence.
#include <utility>

#include "model/stage.h"
#include "runtime/error.h"
#include "runtime/ops.h"

namespace tessera {

void Stage::layout_decode(Arena& arena, DType dt) {
  TS_ASSERT(tp_.size == 1 && spec_.has_embedding && spec_.has_head,
            "decoding runs the whole model on one rank");
  const int64_t C = cfg_.d_model, T = cfg_.seq_len, HS = attn_.head_size;
  const int64_t F = cfg_.ff(), G = comp_.activation == Activation::swiglu ? 2 * F : F;
  const bool layernorm = comp_.norm == Norm::layernorm;
  auto stats = [&]() { return arena.take({1}, dt); };
  auto mean = [&]() { return layernorm ? stats() : Tensor{}; };
  DecodeState& d = dec_;
  d.k.clear();
  d.v.clear();
  for (int64_t l = 0; l < spec_.n_layers; ++l) {
    d.k.push_back(arena.take({T, attn_.kv_heads * HS}, dt));
    d.v.push_back(arena.take({T, attn_.kv_heads * HS}, dt));
  }
  const Shape one{1, 1, C};
  d.a.ln1 = arena.take(one, dt), d.a.ln1_mean = mean(), d.a.ln1_rstd = stats();
  d.a.qkv = arena.take({1, 1, attn_.width()}, dt);
  d.a.atty = arena.take({1, 1, attn_.q_heads * HS}, dt);
  d.a.res2 = arena.take(one, dt);
  d.a.ln2 = arena.take(one, dt), d.a.ln2_mean = mean(), d.a.ln2_rstd = stats();
  d.a.fch = arena.take({1, 1, G}, dt);
  d.a.fch_act = arena.take({1, 1, F}, dt);
  d.x = arena.take(one, dt), d.y = arena.take(one, dt);
  d.proj = arena.take(one, dt), d.mlp = arena.take(one, dt);
  d.emb = arena.take(one, dt), d.emb_mean = mean(), d.emb_rstd = stats();
  d.lnf = arena.take(one, dt), d.lnf_mean = mean(), d.lnf_rstd = stats();
  d.logits = arena.take({1, 1, cfg_.padded_vocab()}, dt);
}

Tensor Stage::decode(Device& dev, Tensor token, int64_t pos) {
  DecodeState& d = dec_;
  TS_ASSERT(pos >= 0 && pos < cfg_.seq_len, "decode: position outside the context");
  const int64_t Wq = attn_.q_heads * attn_.head_size, Wkv = attn_.kv_heads * attn_.head_size;
  const Tensor wpe = wpe_ ? wpe_->value.slice_rows(pos, 1) : Tensor{};
  ops::encoder_forward(dev, cfg_.embedding_norm ? d.emb : d.x, token, wte_->value, wpe);
  if (cfg_.embedding_norm) norm_forward(dev, d.x, d.emb_mean, d.emb_rstd, d.emb, emb_ln_w_, emb_ln_b_);
  const BlockActs& a = d.a;
  for (int64_t l = 0; l < spec_.n_layers; ++l) {
    const BlockParams& w = blocks_[l];
    norm_forward(dev, a.ln1, a.ln1_mean, a.ln1_rstd, d.x, w.ln1_w, w.ln1_b);
    ops::matmul_forward(dev, a.qkv, a.ln1, w.qkv_w->value, w.qkv_b ? w.qkv_b->value : Tensor{});
    if (comp_.position == Position::rope)
      ops::rope_forward(dev, a.qkv, attn_, cfg_.rotary_dims(), static_cast<float>(cfg_.rope_theta), pos);
    ops::convert(dev, d.k[l].slice_rows(pos, 1), flat_slice(a.qkv, Wq, Wkv));
    ops::convert(dev, d.v[l].slice_rows(pos, 1), flat_slice(a.qkv, Wq + Wkv, Wkv));
    ops::attention_decode(dev, a.atty.view({1, Wq}), a.qkv.view({1, attn_.width()}), d.k[l], d.v[l],
                          pos + 1, attn_);
    ops::matmul_forward(dev, d.proj, a.atty, w.proj_w->value, w.proj_b ? w.proj_b->value : Tensor{});
    if (comp_.residual == Residual::parallel) {
      norm_forward(dev, a.ln2, a.ln2_mean, a.ln2_rstd, d.x, w.ln2_w, w.ln2_b);
      mlp_forward(dev, a, w, a.ln2, d.mlp);
      ops::add(dev, d.proj, d.proj, d.mlp);
      ops::add(dev, d.y, d.x, d.proj);
    } else {
      ops::add(dev, a.res2, d.x, d.proj);
      norm_forward(dev, a.ln2, a.ln2_mean, a.ln2_rstd, a.res2, w.ln2_w, w.ln2_b);
      mlp_forward(dev, a, w, a.ln2, d.mlp);
      ops::add(dev, d.y, a.res2, d.mlp);
    }
    std::swap(d.x, d.y);
  }
  norm_forward(dev, d.lnf, d.lnf_mean, d.lnf_rstd, d.x, lnf_w_, lnf_b_);
  ops::matmul_forward(dev, d.logits, d.lnf, lm_head_->value, Tensor{});
  return d.logits.view({1, cfg_.padded_vocab()});
}

}  // namespace tessera
