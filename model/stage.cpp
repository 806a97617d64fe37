// Stage: activation layout, forward and backward, with the tensor-parallel transitions.
#include "model/stage.h"

#include <algorithm>
#include <string>

#include "runtime/error.h"
#include "runtime/ops.h"

namespace tessera {
namespace {

DType stats_dtype(DType compute) { return compute == DType::bf16 ? DType::f32 : compute; }

// Sites of dropout inside a block, for the mask stream ids.
enum DropoutSite { kEmbedding = 0, kAttention = 1, kMlp = 2 };

}  // namespace

Shape Stage::stream_shape() const {
  if (tp_.splits_sequence()) return {stream_rows_, cfg_.d_model};
  return {shape_.micro_batch, shape_.seq_len, cfg_.d_model};
}

void Stage::layout_activations(Arena& arena, const RunShape& s) {
  shape_ = s;
  const int64_t B = s.micro_batch, T = s.seq_len, C = cfg_.d_model, N = B * T;
  const int64_t Cl = attn_.q_heads * attn_.head_size, Wl = attn_.width();
  const int64_t Fl = cfg_.ff() / tp_.size, Gl = comp_.activation == Activation::swiglu ? 2 * Fl : Fl;
  const bool sp = tp_.splits_sequence();
  const bool layernorm = comp_.norm == Norm::layernorm, parallel = comp_.residual == Residual::parallel;
  TS_ASSERT(!sp || N % tp_.size == 0, "sequence parallel: tokens per micro-batch not divisible by tp");
  stream_rows_ = sp ? N / tp_.size : N;
  const Shape stream = stream_shape(), full{B, T, C};
  const DType dt = s.compute, st = stats_dtype(dt);
  const auto aux = ops::attention_aux_shape(s.device, dt, B, T, heads_);
  auto mean = [&]() { return layernorm ? arena.take({stream_rows_}, st) : Tensor{}; };
  auto block = [&]() {
    BlockActs a;
    a.ln1 = arena.take(full, dt);
    a.ln1_mean = mean();
    a.ln1_rstd = arena.take({stream_rows_}, st);
    a.qkv = arena.take({B, T, Wl}, dt);
    a.atty = arena.take({B, T, Cl}, dt);
    a.att_aux = arena.take(aux.shape, aux.dtype);
    if (!parallel) a.res2 = arena.take(stream, dt);
    a.ln2 = arena.take(full, dt);
    a.ln2_mean = mean();
    a.ln2_rstd = arena.take({stream_rows_}, st);
    a.fch = arena.take({B, T, Gl}, dt);
    a.fch_act = arena.take({B, T, Fl}, dt);
    return a;
  };
  slots_.assign(s.slots, SlotActs{});
  const int64_t L = spec_.n_layers;
  if (s.recompute == Recompute::full) {
    BlockActs shared = block();  // one set, recomputed per layer in backward
    for (SlotActs& slot : slots_) slot.blocks.assign(1, shared);
  }
  for (SlotActs& slot : slots_) {
    for (int64_t l = 0; l <= L; ++l) slot.residual.push_back(arena.take(stream, dt));
    if (s.recompute == Recompute::none)
      for (int64_t l = 0; l < L; ++l) slot.blocks.push_back(block());
    if (spec_.has_embedding && cfg_.embedding_norm) {
      slot.emb = arena.take(stream, dt);
      slot.emb_mean = mean();
      slot.emb_rstd = arena.take({stream_rows_}, st);
    }
    if (spec_.has_head) {
      slot.lnf = arena.take(full, dt);
      slot.lnf_mean = mean();
      slot.lnf_rstd = arena.take({stream_rows_}, st);
      slot.logits = arena.take({B, T, vocab_rows_}, dt);
    }
  }
  Scratch& x = scratch_;
  x.proj_full = arena.take(full, dt);
  x.mlp_full = parallel ? arena.take(full, dt) : Tensor{};
  x.dbranch_full = arena.take(full, dt);
  x.dnorm_full = arena.take(full, dt);
  // Without sequence parallelism the stream is the full tensor: the stream views alias.
  x.ln_s = sp ? arena.take(stream, dt) : Tensor{};
  x.proj_s = sp ? arena.take(stream, dt) : x.proj_full;
  x.dbranch_s = sp ? arena.take(stream, dt) : x.dbranch_full;
  x.dnorm_s = sp ? arena.take(stream, dt) : x.dnorm_full;
  x.dres = arena.take(stream, dt);
  x.dx_s = arena.take(stream, dt);
  x.datty = arena.take({B, T, Cl}, dt);
  x.dfch = arena.take({B, T, Gl}, dt);
  // GELU's backward runs in place (din may alias dout); SwiGLU's input is twice its output.
  x.dact = Gl == Fl ? x.dfch : arena.take({B, T, Fl}, dt);
  x.dqkv = arena.take({B, T, Wl}, dt);
  if (spec_.has_head && tp_.size > 1) {
    x.xent_max = arena.take({N}, st);
    x.xent_stats = arena.take({N, 2}, st);
  }
}

const Stage::BlockActs& Stage::block_acts(int slot, int64_t l) const {
  const SlotActs& s = slots_[slot];
  return s.blocks.size() == 1 && shape_.recompute == Recompute::full ? s.blocks[0] : s.blocks[l];
}

Tensor Stage::input(int slot) const { return slots_[slot].residual.front(); }
Tensor Stage::output(int slot) const { return slots_[slot].residual.back(); }
Tensor Stage::grad_output() const { return scratch_.dres; }
Tensor Stage::logits(int slot) const { return slots_[slot].logits; }

uint64_t Stage::dropout_stream(const DropoutKey& key, int64_t layer, int site) const {
  // Distinct stream per (step, micro-batch, layer, site); the element index inside the stream
  // is the position within the micro-batch.
  uint64_t h = 0x9E3779B97F4A7C15ull;
  for (uint64_t v : {static_cast<uint64_t>(key.step), static_cast<uint64_t>(key.first_sample),
                     static_cast<uint64_t>(layer + 1), static_cast<uint64_t>(site)})
    h = (h ^ v) * 0xBF58476D1CE4E5B9ull + (h >> 29);
  return h;
}

void Stage::dropout(Device& dev, Tensor out, Tensor x, const DropoutKey& key, int64_t layer,
                       int site, float p, bool backward) {
  // A sequence-parallel shard is tokens [rank * Ns, (rank + 1) * Ns) of the micro-batch.
  const bool sp = tp_.splits_sequence();
  const uint64_t offset = sp ? static_cast<uint64_t>(tp_.rank * stream_rows_ * cfg_.d_model) : 0;
  const uint64_t stream = dropout_stream(key, layer, site);
  if (backward) ops::dropout_backward(dev, out, x, p, key.seed, stream, offset);
  else ops::dropout_forward(dev, out, x, p, key.seed, stream, offset);
}

namespace {

Tensor value_of(const Param* p) { return p ? p->value : Tensor{}; }
Tensor grad_of(const Param* p) { return p ? p->grad : Tensor{}; }

}  // namespace

void Stage::norm_forward(Device& dev, Tensor out, Tensor mean, Tensor rstd, Tensor in,
                         const Param* w, const Param* b) {
  const float eps = static_cast<float>(cfg_.norm_eps);
  if (comp_.norm == Norm::rmsnorm) ops::rmsnorm_forward(dev, out, rstd, in, w->value, eps);
  else ops::layernorm_forward(dev, out, mean, rstd, in, w->value, b->value, eps);
}

void Stage::norm_backward(Device& dev, Tensor din, Tensor dout, Tensor in, const Param* w,
                          const Param* b, Tensor mean, Tensor rstd) {
  if (comp_.norm == Norm::rmsnorm) ops::rmsnorm_backward(dev, din, w->grad, dout, in, w->value, rstd);
  else ops::layernorm_backward(dev, din, w->grad, b->grad, dout, in, w->value, mean, rstd);
}

// Row-parallel projections add their replicated bias on one rank, before the sum.
void Stage::attention_forward(Device& dev, const BlockActs& a, const BlockParams& w,
                              Tensor out_partial) {
  ops::matmul_forward(dev, a.qkv, a.ln1, w.qkv_w->value, value_of(w.qkv_b));
  if (comp_.position == Position::rope)
    ops::rope_forward(dev, a.qkv, attn_, cfg_.rotary_dims(), static_cast<float>(cfg_.rope_theta));
  ops::attention_forward(dev, a.atty, a.att_aux, a.qkv, attn_);
  ops::matmul_forward(dev, out_partial, a.atty, w.proj_w->value,
                      tp_.rank == 0 ? value_of(w.proj_b) : Tensor{});
}

void Stage::attention_backward(Device& dev, const BlockActs& a, const BlockParams& w, Tensor dout) {
  Scratch& s = scratch_;
  ops::matmul_backward(dev, s.datty, w.proj_w->grad, grad_of(w.proj_b), dout, a.atty, w.proj_w->value);
  ops::attention_backward(dev, s.dqkv, s.datty, a.qkv, a.atty, a.att_aux, attn_);
  if (comp_.position == Position::rope)
    ops::rope_backward(dev, s.dqkv, attn_, cfg_.rotary_dims(), static_cast<float>(cfg_.rope_theta));
  ops::matmul_backward(dev, s.dnorm_full, w.qkv_w->grad, grad_of(w.qkv_b), s.dqkv, a.ln1, w.qkv_w->value);
}

void Stage::mlp_forward(Device& dev, const BlockActs& a, const BlockParams& w, Tensor in,
                        Tensor out_partial) {
  if (comp_.activation == Activation::gelu_tanh) {
    ops::matmul_bias_gelu_forward(dev, a.fch_act, a.fch, in, w.fc_w->value, value_of(w.fc_b));
  } else {
    ops::matmul_forward(dev, a.fch, in, w.fc_w->value, value_of(w.fc_b));
    if (comp_.activation == Activation::gelu) ops::gelu_exact_forward(dev, a.fch_act, a.fch);
    else ops::swiglu_forward(dev, a.fch_act, a.fch);
  }
  ops::matmul_forward(dev, out_partial, a.fch_act, w.fcp_w->value,
                      tp_.rank == 0 ? value_of(w.fcp_b) : Tensor{});
}

void Stage::mlp_backward(Device& dev, const BlockActs& a, const BlockParams& w, Tensor in,
                         Tensor dout) {
  Scratch& s = scratch_;
  ops::matmul_backward(dev, s.dact, w.fcp_w->grad, grad_of(w.fcp_b), dout, a.fch_act, w.fcp_w->value);
  if (comp_.activation == Activation::gelu_tanh) ops::gelu_backward(dev, s.dfch, a.fch, s.dact);
  else if (comp_.activation == Activation::gelu) ops::gelu_exact_backward(dev, s.dfch, a.fch, s.dact);
  else ops::swiglu_backward(dev, s.dfch, a.fch, s.dact);
  ops::matmul_backward(dev, s.dnorm_full, w.fc_w->grad, grad_of(w.fc_b), s.dfch, in, w.fc_w->value);
}

// Sequential residual: res2 = x + dropout(attn(n1(x))); out = res2 + dropout(mlp(n2(res2))).
// Parallel residual:   out = x + dropout(attn(n1(x)) + mlp(n2(x))), the two branches' partial
// sums added before one tensor-parallel reduction.
void Stage::block_forward(Device& dev, int64_t l, const BlockActs& a, Tensor x, Tensor out,
                          const DropoutKey& key, bool training) {
  const BlockParams& w = blocks_[l];
  const float p = training ? static_cast<float>(cfg_.dropout) : 0.0f;
  const int64_t layer = spec_.first_layer + l;
  const bool sp = tp_.splits_sequence();
  const bool parallel = comp_.residual == Residual::parallel;
  norm_forward(dev, sp ? scratch_.ln_s : a.ln1, a.ln1_mean, a.ln1_rstd, x, w.ln1_w, w.ln1_b);
  gather_from_sp(tp_, sp ? scratch_.ln_s : a.ln1, a.ln1);
  attention_forward(dev, a, w, scratch_.proj_full);
  if (parallel) {
    norm_forward(dev, sp ? scratch_.ln_s : a.ln2, a.ln2_mean, a.ln2_rstd, x, w.ln2_w, w.ln2_b);
    gather_from_sp(tp_, sp ? scratch_.ln_s : a.ln2, a.ln2);
    mlp_forward(dev, a, w, a.ln2, scratch_.mlp_full);
    ops::add(dev, scratch_.proj_full, scratch_.proj_full, scratch_.mlp_full);
    Tensor branches = reduce_from_tp(tp_, scratch_.proj_full, scratch_.proj_s);
    dropout(dev, branches, branches, key, layer, kAttention, p, false);
    ops::add(dev, out, x, branches);
    return;
  }
  Tensor proj = reduce_from_tp(tp_, scratch_.proj_full, scratch_.proj_s);
  dropout(dev, proj, proj, key, layer, kAttention, p, false);
  ops::add(dev, a.res2, x, proj);
  norm_forward(dev, sp ? scratch_.ln_s : a.ln2, a.ln2_mean, a.ln2_rstd, a.res2, w.ln2_w, w.ln2_b);
  gather_from_sp(tp_, sp ? scratch_.ln_s : a.ln2, a.ln2);
  mlp_forward(dev, a, w, a.ln2, scratch_.proj_full);
  proj = reduce_from_tp(tp_, scratch_.proj_full, scratch_.proj_s);
  dropout(dev, proj, proj, key, layer, kMlp, p, false);
  ops::add(dev, out, a.res2, proj);
}

// dres (stream) holds d(block output) on entry and d(block input) on exit. The transitions
// mirror forward: a gather where forward reduced, a reduce where forward gathered.
void Stage::block_backward(Device& dev, int64_t l, const BlockActs& a, Tensor x, Tensor dres,
                           const DropoutKey& key) {
  const BlockParams& w = blocks_[l];
  const float p = static_cast<float>(cfg_.dropout);
  const int64_t layer = spec_.first_layer + l;
  Scratch& s = scratch_;
  const bool parallel = comp_.residual == Residual::parallel;
  // MLP branch (its input is x under the parallel residual, res2 otherwise).
  dropout(dev, s.dbranch_s, dres, key, layer, parallel ? kAttention : kMlp, p, true);
  Tensor dbranch = gather_from_sp(tp_, s.dbranch_s, s.dbranch_full);
  const Tensor mlp_in = parallel ? x : a.res2;
  mlp_backward(dev, a, w, a.ln2, dbranch);
  Tensor dln = reduce_from_tp(tp_, s.dnorm_full, s.dnorm_s);
  norm_backward(dev, s.dx_s, dln, mlp_in, w.ln2_w, w.ln2_b, a.ln2_mean, a.ln2_rstd);
  ops::add_inplace(dev, dres, s.dx_s);
  // Attention branch: the parallel residual's branches share one gradient (dbranch, which
  // the MLP's backward left intact); the sequential one takes d(res2).
  if (!parallel) {
    dropout(dev, s.dbranch_s, dres, key, layer, kAttention, p, true);
    dbranch = gather_from_sp(tp_, s.dbranch_s, s.dbranch_full);
  }
  attention_backward(dev, a, w, dbranch);
  dln = reduce_from_tp(tp_, s.dnorm_full, s.dnorm_s);
  norm_backward(dev, s.dx_s, dln, x, w.ln1_w, w.ln1_b, a.ln1_mean, a.ln1_rstd);
  ops::add_inplace(dev, dres, s.dx_s);
}

void Stage::forward(Device& dev, int slot, Tensor tokens, Tensor input, Tensor targets,
                       Tensor losses, const DropoutKey& key, bool training, float dloss) {
  SlotActs& s = slots_[slot];
  const float p = training ? static_cast<float>(cfg_.dropout) : 0.0f;
  if (spec_.has_embedding) {
    // Vocabulary-parallel lookup: each rank fills the tokens it owns, the sum completes it.
    const bool sp = tp_.splits_sequence();
    // With embedding_norm the sum lands in s.emb and the norm writes the stream.
    const Tensor stream = cfg_.embedding_norm ? s.emb : s.residual[0];
    Tensor emb = sp ? scratch_.proj_full : stream.view({shape_.micro_batch, shape_.seq_len, cfg_.d_model});
    ops::encoder_forward(dev, emb, tokens, wte_->value, tp_.rank == 0 ? value_of(wpe_) : Tensor{},
                         tp_.rank * vocab_rows_);
    reduce_from_tp(tp_, emb, stream);
    if (cfg_.embedding_norm)
      norm_forward(dev, s.residual[0], s.emb_mean, s.emb_rstd, s.emb, emb_ln_w_, emb_ln_b_);
    dropout(dev, s.residual[0], s.residual[0], key, -1, kEmbedding, p, false);
  } else if (!input.empty() && input.data != s.residual[0].data) {
    ops::convert(dev, s.residual[0], input);
  }
  for (int64_t l = 0; l < spec_.n_layers; ++l)
    block_forward(dev, l, block_acts(slot, l), s.residual[l], s.residual[l + 1], key, training);
  if (!spec_.has_head) return;
  const bool sp = tp_.splits_sequence();
  Tensor ln = sp ? scratch_.ln_s : s.lnf;
  norm_forward(dev, ln, s.lnf_mean, s.lnf_rstd, s.residual.back(), lnf_w_, lnf_b_);
  gather_from_sp(tp_, ln, s.lnf);
  ops::matmul_forward(dev, s.logits, s.lnf, lm_head_->value, Tensor{});
  if (targets.empty()) return;  // generation: logits only
  head_loss(dev, s, targets, losses, dloss);
}

void Stage::head_loss(Device& dev, SlotActs& s, Tensor targets, Tensor losses, float dloss) {
  const int64_t N = shape_.micro_batch * shape_.seq_len;
  Tensor logits = s.logits.view({N, vocab_rows_});
  Tensor flat_targets = targets.view({N});
  if (tp_.size == 1) {
    if (dloss != 0.0f)
      ops::cross_entropy_forward_backward(dev, losses, logits, flat_targets, cfg_.vocab_size, dloss);
    else
      ops::cross_entropy_forward(dev, losses, logits, flat_targets, cfg_.vocab_size);
    return;
  }
  // Vocabulary-parallel: the full logits are never gathered, only (N) maxima and (N,2) sums.
  const int64_t start = tp_.rank * vocab_rows_;
  const int64_t valid = std::clamp<int64_t>(cfg_.vocab_size - start, 0, vocab_rows_);
  ops::xent_vocab_max(dev, scratch_.xent_max, logits, valid);
  tp_.comm->all_reduce(scratch_.xent_max, ReduceOp::max);
  ops::xent_vocab_sums(dev, scratch_.xent_stats, logits, scratch_.xent_max, flat_targets, start, valid);
  tp_.comm->all_reduce(scratch_.xent_stats);
  ops::xent_vocab_finish(dev, losses, logits, scratch_.xent_max, scratch_.xent_stats, flat_targets,
                         start, valid, dloss);
}

Tensor Stage::backward(Device& dev, int slot, Tensor tokens, Tensor dout, const DropoutKey& key,
                          const std::function<void(int64_t)>& block_done) {
  SlotActs& s = slots_[slot];
  Scratch& x = scratch_;
  Tensor dres = x.dres;
  if (spec_.has_head) {
    // logits now hold dlogits (written by the loss in forward). d(lnf) is a partial sum over
    // the vocabulary slices.
    ops::matmul_backward(dev, x.dnorm_full, lm_head_->grad, Tensor{}, s.logits, s.lnf, lm_head_->value);
    Tensor dln = reduce_from_tp(tp_, x.dnorm_full, x.dnorm_s);
    norm_backward(dev, dres, dln, s.residual.back(), lnf_w_, lnf_b_, s.lnf_mean, s.lnf_rstd);
  } else if (dout.data != dres.data) {
    ops::convert(dev, dres, dout);
  }
  for (int64_t l = spec_.n_layers - 1; l >= 0; --l) {
    const BlockActs& a = block_acts(slot, l);
    if (shape_.recompute == Recompute::full)
      block_forward(dev, l, a, s.residual[l], x.dx_s, key, true);  // output unused
    block_backward(dev, l, a, s.residual[l], dres, key);
    if (block_done) block_done(spec_.first_layer + l);
  }
  if (spec_.has_embedding) {
    dropout(dev, dres, dres, key, -1, kEmbedding, static_cast<float>(cfg_.dropout), true);
    Tensor demb = dres;
    if (cfg_.embedding_norm) {
      norm_backward(dev, x.dx_s, dres, s.emb, emb_ln_w_, emb_ln_b_, s.emb_mean, s.emb_rstd);
      demb = x.dx_s;
    }
    Tensor d = gather_from_sp(tp_, demb, x.dbranch_full);
    ops::encoder_backward(dev, wte_->grad, grad_of(wpe_), d.view({shape_.micro_batch, shape_.seq_len, cfg_.d_model}),
                          tokens, tp_.rank * vocab_rows_);
  }
  return dres;
}

}  // namespace tessera
