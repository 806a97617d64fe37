// GptStage: activation layout, forward and backward, with the tensor-parallel transitions.
#include "model/gpt.h"

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

Shape GptStage::stream_shape() const {
  if (tp_.sequence_parallel && tp_.size > 1) return {stream_rows_, cfg_.d_model};
  return {shape_.micro_batch, shape_.seq_len, cfg_.d_model};
}

void GptStage::layout_activations(Arena& arena, const RunShape& s) {
  shape_ = s;
  const int64_t B = s.micro_batch, T = s.seq_len, C = cfg_.d_model, N = B * T;
  const int64_t Cl = C / tp_.size, Fl = cfg_.ff() / tp_.size;
  const bool sp = tp_.sequence_parallel && tp_.size > 1;
  TS_ASSERT(!sp || N % tp_.size == 0, "sequence parallel: tokens per micro-batch not divisible by tp");
  stream_rows_ = sp ? N / tp_.size : N;
  const Shape stream = stream_shape(), full{B, T, C};
  const DType dt = s.compute, st = stats_dtype(dt);
  const auto aux = ops::attention_aux_shape(s.device, dt, B, T, heads_);
  auto block = [&]() {
    BlockActs a;
    a.ln1 = arena.take(full, dt);
    a.ln1_mean = arena.take({stream_rows_}, st);
    a.ln1_rstd = arena.take({stream_rows_}, st);
    a.qkv = arena.take({B, T, 3 * Cl}, dt);
    a.atty = arena.take({B, T, Cl}, dt);
    a.att_aux = arena.take(aux.shape, aux.dtype);
    a.res2 = arena.take(stream, dt);
    a.ln2 = arena.take(full, dt);
    a.ln2_mean = arena.take({stream_rows_}, st);
    a.ln2_rstd = arena.take({stream_rows_}, st);
    a.fch = arena.take({B, T, Fl}, dt);
    a.fch_gelu = arena.take({B, T, Fl}, dt);
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
    if (spec_.has_head) {
      slot.lnf = arena.take(full, dt);
      slot.lnf_mean = arena.take({stream_rows_}, st);
      slot.lnf_rstd = arena.take({stream_rows_}, st);
      slot.logits = arena.take({B, T, vocab_rows_}, dt);
    }
  }
  Scratch& x = scratch_;
  x.proj_full = arena.take(full, dt);
  x.dc_full = arena.take(full, dt);
  x.d2_full = arena.take(full, dt);
  // Without sequence parallelism the stream is the full tensor: the stream views alias.
  x.ln_s = sp ? arena.take(stream, dt) : Tensor{};
  x.proj_s = sp ? arena.take(stream, dt) : x.proj_full;
  x.dc_s = sp ? arena.take(stream, dt) : x.dc_full;
  x.d2_s = sp ? arena.take(stream, dt) : x.d2_full;
  x.dres = arena.take(stream, dt);
  x.d3_s = arena.take(stream, dt);
  x.datty = arena.take({B, T, Cl}, dt);
  x.dff = arena.take({B, T, Fl}, dt);
  x.d3c = arena.take({B, T, 3 * Cl}, dt);
  if (spec_.has_head && tp_.size > 1) {
    x.xent_max = arena.take({N}, st);
    x.xent_stats = arena.take({N, 2}, st);
  }
}

const GptStage::BlockActs& GptStage::block_acts(int slot, int64_t l) const {
  const SlotActs& s = slots_[slot];
  return s.blocks.size() == 1 && shape_.recompute == Recompute::full ? s.blocks[0] : s.blocks[l];
}

Tensor GptStage::input(int slot) const { return slots_[slot].residual.front(); }
Tensor GptStage::output(int slot) const { return slots_[slot].residual.back(); }
Tensor GptStage::grad_output() const { return scratch_.dres; }
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

void GptStage::dropout(Device& dev, Tensor out, Tensor x, const DropoutKey& key, int64_t layer,
                       int site, float p, bool backward) {
  // A sequence-parallel shard is tokens [rank * Ns, (rank + 1) * Ns) of the micro-batch.
  const bool sp = tp_.sequence_parallel && tp_.size > 1;
  const uint64_t offset = sp ? static_cast<uint64_t>(tp_.rank * stream_rows_ * cfg_.d_model) : 0;
  const uint64_t stream = dropout_stream(key, layer, site);
  if (backward) ops::dropout_backward(dev, out, x, p, key.seed, stream, offset);
  else ops::dropout_forward(dev, out, x, p, key.seed, stream, offset);
}

Tensor GptStage::reduce_to_stream(Tensor partial, Tensor stream_buf) {
  if (tp_.size == 1) return partial;
  if (tp_.sequence_parallel) {
    tp_.comm->reduce_scatter(stream_buf, partial);
    return stream_buf;
  }
  tp_.comm->all_reduce(partial);
  return partial;
}

Tensor GptStage::gather_from_stream(Tensor stream, Tensor full_buf) {
  if (tp_.size == 1 || !tp_.sequence_parallel) return stream;
  tp_.comm->all_gather(full_buf, stream);
  return full_buf;
}

void GptStage::block_forward(Device& dev, int64_t l, const BlockActs& a, Tensor x, Tensor out,
                             const DropoutKey& key, bool training) {
  const BlockParams& w = blocks_[l];
  const float eps = static_cast<float>(cfg_.layernorm_eps);
  const float p = training ? static_cast<float>(cfg_.dropout) : 0.0f;
  const int64_t layer = spec_.first_layer + l;
  const bool sp = tp_.sequence_parallel && tp_.size > 1;
  // Row-parallel projections add their replicated bias on one rank, before the sum.
  const bool bias_here = tp_.rank == 0;
  // Attention: res2 = x + dropout(proj(attn(qkv(ln1(x)))))
  Tensor ln = sp ? scratch_.ln_s : a.ln1;
  ops::layernorm_forward(dev, ln, a.ln1_mean, a.ln1_rstd, x, w.ln1_w->value, w.ln1_b->value, eps);
  gather_from_stream(ln, a.ln1);
  ops::matmul_forward(dev, a.qkv, a.ln1, w.qkv_w->value, w.qkv_b->value);
  ops::attention_forward(dev, a.atty, a.att_aux, a.qkv, heads_);
  ops::matmul_forward(dev, scratch_.proj_full, a.atty, w.proj_w->value,
                      bias_here ? w.proj_b->value : Tensor{});
  Tensor proj = reduce_to_stream(scratch_.proj_full, scratch_.proj_s);
  dropout(dev, proj, proj, key, layer, kAttention, p, false);
  ops::add(dev, a.res2, x, proj);
  // MLP: out = res2 + dropout(fc_proj(gelu(fc(ln2(res2)))))
  ln = sp ? scratch_.ln_s : a.ln2;
  ops::layernorm_forward(dev, ln, a.ln2_mean, a.ln2_rstd, a.res2, w.ln2_w->value, w.ln2_b->value, eps);
  gather_from_stream(ln, a.ln2);
  ops::matmul_bias_gelu_forward(dev, a.fch_gelu, a.fch, a.ln2, w.fc_w->value, w.fc_b->value);
  ops::matmul_forward(dev, scratch_.proj_full, a.fch_gelu, w.fcp_w->value,
                      bias_here ? w.fcp_b->value : Tensor{});
  proj = reduce_to_stream(scratch_.proj_full, scratch_.proj_s);
  dropout(dev, proj, proj, key, layer, kMlp, p, false);
  ops::add(dev, out, a.res2, proj);
}

// dres (stream) holds d(block output) on entry and d(block input) on exit. The transitions
// mirror forward: a gather where forward reduced, a reduce where forward gathered.
void GptStage::block_backward(Device& dev, int64_t l, const BlockActs& a, Tensor x, Tensor dres,
                              const DropoutKey& key) {
  const BlockParams& w = blocks_[l];
  const float p = static_cast<float>(cfg_.dropout);
  const int64_t layer = spec_.first_layer + l;
  Scratch& s = scratch_;
  // MLP branch.
  dropout(dev, s.dc_s, dres, key, layer, kMlp, p, true);
  Tensor dc = gather_from_stream(s.dc_s, s.dc_full);
  ops::matmul_backward(dev, s.dff, w.fcp_w->grad, w.fcp_b->grad, dc, a.fch_gelu, w.fcp_w->value);
  ops::gelu_backward(dev, s.dff, a.fch, s.dff);
  ops::matmul_backward(dev, s.d2_full, w.fc_w->grad, w.fc_b->grad, s.dff, a.ln2, w.fc_w->value);
  Tensor dln = reduce_to_stream(s.d2_full, s.d2_s);
  ops::layernorm_backward(dev, s.d3_s, w.ln2_w->grad, w.ln2_b->grad, dln, a.res2, w.ln2_w->value,
                          a.ln2_mean, a.ln2_rstd);
  ops::add_inplace(dev, dres, s.d3_s);
  // Attention branch.
  dropout(dev, s.dc_s, dres, key, layer, kAttention, p, true);
  dc = gather_from_stream(s.dc_s, s.dc_full);
  ops::matmul_backward(dev, s.datty, w.proj_w->grad, w.proj_b->grad, dc, a.atty, w.proj_w->value);
  ops::attention_backward(dev, s.d3c, s.datty, a.qkv, a.atty, a.att_aux, heads_);
  ops::matmul_backward(dev, s.d2_full, w.qkv_w->grad, w.qkv_b->grad, s.d3c, a.ln1, w.qkv_w->value);
  dln = reduce_to_stream(s.d2_full, s.d2_s);
  ops::layernorm_backward(dev, s.d3_s, w.ln1_w->grad, w.ln1_b->grad, dln, x, w.ln1_w->value,
                          a.ln1_mean, a.ln1_rstd);
  ops::add_inplace(dev, dres, s.d3_s);
}

void GptStage::forward(Device& dev, int slot, Tensor tokens, Tensor input, Tensor targets,
                       Tensor losses, const DropoutKey& key, bool training, float dloss) {
  SlotActs& s = slots_[slot];
  const float p = training ? static_cast<float>(cfg_.dropout) : 0.0f;
  if (spec_.has_embedding) {
    // Vocabulary-parallel lookup: each rank fills the tokens it owns, the sum completes it.
    const bool sp = tp_.sequence_parallel && tp_.size > 1;
    Tensor emb = sp ? scratch_.proj_full : s.residual[0].view({shape_.micro_batch, shape_.seq_len, cfg_.d_model});
    ops::encoder_forward(dev, emb, tokens, wte_->value, tp_.rank == 0 ? wpe_->value : Tensor{},
                         tp_.rank * vocab_rows_);
    reduce_to_stream(emb, s.residual[0]);
    dropout(dev, s.residual[0], s.residual[0], key, -1, kEmbedding, p, false);
  } else if (!input.empty() && input.data != s.residual[0].data) {
    ops::convert(dev, s.residual[0], input);
  }
  for (int64_t l = 0; l < spec_.n_layers; ++l)
    block_forward(dev, l, block_acts(slot, l), s.residual[l], s.residual[l + 1], key, training);
  if (!spec_.has_head) return;
  const bool sp = tp_.sequence_parallel && tp_.size > 1;
  Tensor ln = sp ? scratch_.ln_s : s.lnf;
  ops::layernorm_forward(dev, ln, s.lnf_mean, s.lnf_rstd, s.residual.back(), lnf_w_->value,
                         lnf_b_->value, static_cast<float>(cfg_.layernorm_eps));
  gather_from_stream(ln, s.lnf);
  ops::matmul_forward(dev, s.logits, s.lnf, lm_head_->value, Tensor{});
  if (targets.empty()) return;  // generation: logits only
  head_loss(dev, s, targets, losses, dloss);
}

void GptStage::head_loss(Device& dev, SlotActs& s, Tensor targets, Tensor losses, float dloss) {
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

Tensor GptStage::backward(Device& dev, int slot, Tensor tokens, Tensor dout, const DropoutKey& key,
                          const std::function<void(int64_t)>& block_done) {
  SlotActs& s = slots_[slot];
  Scratch& x = scratch_;
  Tensor dres = x.dres;
  if (spec_.has_head) {
    // logits now hold dlogits (written by the loss in forward). d(lnf) is a partial sum over
    // the vocabulary slices.
    ops::matmul_backward(dev, x.d2_full, lm_head_->grad, Tensor{}, s.logits, s.lnf, lm_head_->value);
    Tensor dln = reduce_to_stream(x.d2_full, x.d2_s);
    ops::layernorm_backward(dev, dres, lnf_w_->grad, lnf_b_->grad, dln, s.residual.back(),
                            lnf_w_->value, s.lnf_mean, s.lnf_rstd);
  } else if (dout.data != dres.data) {
    ops::convert(dev, dres, dout);
  }
  for (int64_t l = spec_.n_layers - 1; l >= 0; --l) {
    const BlockActs& a = block_acts(slot, l);
    if (shape_.recompute == Recompute::full)
      block_forward(dev, l, a, s.residual[l], x.d3_s, key, true);  // output unused
    block_backward(dev, l, a, s.residual[l], dres, key);
    if (block_done) block_done(spec_.first_layer + l);
  }
  if (spec_.has_embedding) {
    dropout(dev, dres, dres, key, -1, kEmbedding, static_cast<float>(cfg_.dropout), true);
    Tensor d = gather_from_stream(dres, x.dc_full);
    ops::encoder_backward(dev, wte_->grad, wpe_->grad, d.view({shape_.micro_batch, shape_.seq_len, cfg_.d_model}),
                          tokens, tp_.rank * vocab_rows_);
  }
  return dres;
}

}  // namespace tessera
