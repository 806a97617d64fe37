// The op set the model needs. Every op dispatches on the device of its tensors:
//   CPU : float and double (OpenBLAS GEMM, OpenMP loops), all tensors of one compute dtype;
//   CUDA: bf16 activations/weights with fp32 accumulation; weight gradients, losses, norm
//         statistics and optimizer state in f32.
// Shapes are in the comments: N = B*T rows, C channels, OC output channels, NH heads,
// Vp padded vocabulary, V real vocabulary. Unless stated, outputs are overwritten; "+=" marks
// accumulation (weight gradients accumulate across micro-batches).
#pragma once
#include <cstdint>

#include "runtime/device.h"
#include "runtime/tensor.h"

namespace tessera::ops {

// out (B,T,C) = wte[tokens] (Vp,C) + wpe[t] (T_max,C); tokens (B,T) i32.
// Vocabulary-parallel: wte holds rows [vocab_start, vocab_start + rows) of the table; tokens
// outside that range contribute zero (the tensor-parallel sum fills them in). wpe may be empty
// (no position term: on every tensor-parallel rank but one).
void encoder_forward(Device& dev, Tensor out, Tensor tokens, Tensor wte, Tensor wpe,
                     int64_t vocab_start = 0);
// dwte += scatter(dout) for tokens in this rank's rows, dwpe += sum over batch. dwte or dwpe
// may be empty.
void encoder_backward(Device& dev, Tensor dwte, Tensor dwpe, Tensor dout, Tensor tokens,
                      int64_t vocab_start = 0);

// out (N,C) = (in - mean) * rstd * weight + bias; mean, rstd (N) saved for backward.
void layernorm_forward(Device& dev, Tensor out, Tensor mean, Tensor rstd, Tensor in,
                       Tensor weight, Tensor bias, float eps);
// din (N,C) overwritten; dweight, dbias (C) +=.
void layernorm_backward(Device& dev, Tensor din, Tensor dweight, Tensor dbias, Tensor dout,
                        Tensor in, Tensor weight, Tensor mean, Tensor rstd);

// out (N,OC) = in (N,C) @ weight(OC,C)^T + bias (OC); bias may be empty.
void matmul_forward(Device& dev, Tensor out, Tensor in, Tensor weight, Tensor bias);
// pre (N,OC) = in @ weight^T + bias; out (N,OC) = gelu(pre). One fused epilogue on CUDA.
void matmul_bias_gelu_forward(Device& dev, Tensor out, Tensor pre, Tensor in, Tensor weight,
                              Tensor bias);
// din (N,C) = dout @ weight (overwritten; may be empty); dweight (OC,C) += dout^T @ in;
// dbias (OC) += column sums of dout (may be empty).
void matmul_backward(Device& dev, Tensor din, Tensor dweight, Tensor dbias, Tensor dout,
                     Tensor in, Tensor weight);

// GELU, tanh approximation (as GPT-2). din = gelu'(in) * dout. din may alias dout.
void gelu_forward(Device& dev, Tensor out, Tensor in);
void gelu_backward(Device& dev, Tensor din, Tensor in, Tensor dout);
// GELU, exact: x * Phi(x) with the normal CDF through erf (GPT-NeoX / Pythia). din may alias dout.
void gelu_exact_forward(Device& dev, Tensor out, Tensor in);
void gelu_exact_backward(Device& dev, Tensor din, Tensor in, Tensor dout);
// SwiGLU: in (N,2F) holds [gate | up] per row; out (N,F) = silu(gate) * up. din (N,2F) is
// overwritten.
void swiglu_forward(Device& dev, Tensor out, Tensor in);
void swiglu_backward(Device& dev, Tensor din, Tensor in, Tensor dout);

// RMSNorm: out (N,C) = in * rstd * weight, rstd (N) = 1 / sqrt(mean(in^2) + eps) saved for
// backward. din (N,C) overwritten; dweight (C) +=.
void rmsnorm_forward(Device& dev, Tensor out, Tensor rstd, Tensor in, Tensor weight, float eps);
void rmsnorm_backward(Device& dev, Tensor din, Tensor dweight, Tensor dout, Tensor in,
                      Tensor weight, Tensor rstd);

// The heads of one packed qkv row: (q_heads + 2 kv_heads) * head_size columns laid out as
// [q heads | k heads | v heads], head h at [h*HS, (h+1)*HS) of its part. Query head h reads
// key/value head h / (q_heads / kv_heads) (grouped-query attention; kv_heads = q_heads is
// multi-head attention). With ALiBi (alibi_heads > 0) the score of query t and key s gets
// -slope(g) * (t - s), g = alibi_first_head + h the head's index among the model's
// alibi_heads heads (tensor-parallel ranks hold consecutive heads).
struct AttentionHeads {
  int64_t q_heads = 1, kv_heads = 1, head_size = 1;
  int64_t alibi_heads = 0, alibi_first_head = 0;
  int64_t width() const { return (q_heads + 2 * kv_heads) * head_size; }
};
// ALiBi slope of head g among n heads (Press et al.; for n not a power of two, BLOOM's
// interleaving of the next power's odd slopes).
double alibi_slope(int64_t g, int64_t n);

// Rotary position embedding, in place on the q and k heads of qkv (B,T,width): in each head
// the first rotary_dims columns are rotated in pairs (i, i + rotary_dims/2) (the rotate-half
// pairing of GPT-NeoX and Hugging Face LLaMA) by the angle (position_offset + t) *
// theta^(-2i/rotary_dims); the other columns and v are untouched. Backward rotates the
// gradients of q and k back (by minus the angle), in place on dqkv.
void rope_forward(Device& dev, Tensor qkv, const AttentionHeads& heads, int64_t rotary_dims,
                  float theta, int64_t position_offset = 0);
void rope_backward(Device& dev, Tensor dqkv, const AttentionHeads& heads, int64_t rotary_dims,
                   float theta, int64_t position_offset = 0);

// Causal self-attention over qkv (B,T,width) laid out as AttentionHeads says; out (B,T,q_heads*HS).
// aux holds what backward needs: attention_aux_shape() says its shape/dtype for a device
// (CPU: probabilities (B,NH,T,T); CUDA: softmax statistics (B,NH,T) f32), NH = q_heads.
struct AuxSpec {
  Shape shape;
  DType dtype;
};
AuxSpec attention_aux_shape(DeviceKind device, DType compute, int64_t B, int64_t T, int64_t NH);
void attention_forward(Device& dev, Tensor out, Tensor aux, Tensor qkv, const AttentionHeads& heads);
// dqkv (B,T,width) overwritten.
void attention_backward(Device& dev, Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor aux,
                        const AttentionHeads& heads);

// Incremental decoding: the query of one new token against cached keys and values. qkv_row
// (1,width) is the token's packed row (only its q part is read); kcache, vcache (S,kv_heads*HS)
// hold the keys/values of positions [0, len), the new token's at len - 1; out (1,q_heads*HS).
// CPU only (generation runs on the CPU).
void attention_decode(Device& dev, Tensor out, Tensor qkv_row, Tensor kcache, Tensor vcache,
                      int64_t len, const AttentionHeads& heads);

// out = a + b (all same shape). out may alias a or b.
void add(Device& dev, Tensor out, Tensor a, Tensor b);
// acc += x.
void add_inplace(Device& dev, Tensor acc, Tensor x);

// Inverted dropout with a counter-based mask: element i of the tensor is kept iff
// philox_uniform(seed, stream, offset + i) >= p, kept values scaled by 1/(1-p). Nothing is
// stored: backward regenerates the mask from (seed, stream, offset). `offset` places a slice
// (a sequence-parallel shard) inside the whole tensor, so masks do not depend on the layout.
// out may alias in.
void dropout_forward(Device& dev, Tensor out, Tensor in, float p, uint64_t seed, uint64_t stream,
                     uint64_t offset = 0);
void dropout_backward(Device& dev, Tensor din, Tensor dout, float p, uint64_t seed,
                      uint64_t stream, uint64_t offset = 0);

// Fused softmax cross-entropy over the first V of Vp columns (padding columns get zero
// gradient). losses (N) = -log softmax(logits)[target]; rows whose target is < 0 are ignored
// (loss 0, gradient 0). Then logits is overwritten in place by
// dlogits = (softmax - onehot(target)) * dloss, so the probabilities are never stored.
void cross_entropy_forward_backward(Device& dev, Tensor losses, Tensor logits, Tensor targets,
                                    int64_t V, float dloss);
// Forward only (evaluation); logits untouched.
void cross_entropy_forward(Device& dev, Tensor losses, Tensor logits, Tensor targets, int64_t V);

// Vocabulary-parallel cross-entropy in three passes around two tensor-parallel all-reduces
// (max, then sum), so the full logits are never gathered. logits (N,Vl) hold the columns
// [vocab_start, vocab_start + Vl) of the padded vocabulary; the first `valid` of them are real
// tokens (the rest padding). rowmax (N) and stats (N,2) are in the loss dtype (f32; f64 on
// the CPU reference).
//   1. rowmax = max over valid columns (-inf-like lowest when valid = 0)      -> all-reduce max
//   2. stats[:,0] = sum exp(z - rowmax), stats[:,1] = z[target] if this rank owns the target
//      column, else 0                                                         -> all-reduce sum
//   3. losses = log(stats0) + rowmax - stats1 (0 where target < 0); when dloss != 0, logits
//      are overwritten by (softmax - onehot) * dloss (0 in padding columns and ignored rows).
void xent_vocab_max(Device& dev, Tensor rowmax, Tensor logits, int64_t valid);
void xent_vocab_sums(Device& dev, Tensor stats, Tensor logits, Tensor rowmax, Tensor targets,
                     int64_t vocab_start, int64_t valid);
void xent_vocab_finish(Device& dev, Tensor losses, Tensor logits, Tensor rowmax, Tensor stats,
                       Tensor targets, int64_t vocab_start, int64_t valid, float dloss);

// AdamW with decoupled weight decay on one contiguous parameter range:
//   g = grad * grad_scale; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
//   p -= lr * (m / (1-b1^t) / (sqrt(v / (1-b2^t)) + eps) + weight_decay * p)
// master, grad, m, v (n) share a dtype (f32, or f64 on the CPU reference). If working is not
// empty (bf16 on CUDA) it receives the rounded updated weights.
struct AdamWParams {
  float lr, beta1, beta2, eps, weight_decay;
  int64_t step;  // 1-based
  float grad_scale;
};
void adamw_step(Device& dev, Tensor master, Tensor grad, Tensor m, Tensor v, Tensor working,
                const AdamWParams& hp);

// out (1) (+)= sum(x^2) in out's dtype (f32 or f64).
void sum_squares(Device& dev, Tensor out, Tensor x, bool accumulate);
// x *= s.
void scale_inplace(Device& dev, Tensor x, float s);
// dst = src with dtype conversion (f32 <-> bf16 <-> f64), same device and element count.
void convert(Device& dev, Tensor dst, Tensor src);
void fill_zero(Device& dev, Tensor t);

}  // namespace tessera::ops
