// The CPU backend: one function per op in runtime/ops.h, templated on the element type
// (float for training, double for the fp64 reference and gradient checks). All tensors of one
// call share the element type, except tokens/targets (i32).
#pragma once
#include "runtime/ops.h"

namespace tessera::cpu {

template <typename T>
void encoder_forward(Tensor out, Tensor tokens, Tensor wte, Tensor wpe, int64_t vocab_start);
template <typename T>
void encoder_backward(Tensor dwte, Tensor dwpe, Tensor dout, Tensor tokens, int64_t vocab_start);
template <typename T>
void layernorm_forward(Tensor out, Tensor mean, Tensor rstd, Tensor in, Tensor weight,
                       Tensor bias, float eps);
template <typename T>
void layernorm_backward(Tensor din, Tensor dweight, Tensor dbias, Tensor dout, Tensor in,
                        Tensor weight, Tensor mean, Tensor rstd);
template <typename T> void matmul_forward(Tensor out, Tensor in, Tensor weight, Tensor bias);
template <typename T>
void matmul_backward(Tensor din, Tensor dweight, Tensor dbias, Tensor dout, Tensor in,
                     Tensor weight);
template <typename T> void gelu_forward(Tensor out, Tensor in);
template <typename T> void gelu_backward(Tensor din, Tensor in, Tensor dout);
template <typename T> void gelu_exact_forward(Tensor out, Tensor in);
template <typename T> void gelu_exact_backward(Tensor din, Tensor in, Tensor dout);
template <typename T> void swiglu_forward(Tensor out, Tensor in);
template <typename T> void swiglu_backward(Tensor din, Tensor in, Tensor dout);
template <typename T>
void rmsnorm_forward(Tensor out, Tensor rstd, Tensor in, Tensor weight, float eps);
template <typename T>
void rmsnorm_backward(Tensor din, Tensor dweight, Tensor dout, Tensor in, Tensor weight,
                      Tensor rstd);
// backward = true rotates by minus the angle (the gradient of forward).
template <typename T>
void rope(Tensor qkv, const ops::AttentionHeads& heads, int64_t rotary_dims, float theta,
          int64_t position_offset, bool backward);
template <typename T>
void attention_forward(Tensor out, Tensor probs, Tensor qkv, const ops::AttentionHeads& heads);
template <typename T>
void attention_backward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor probs,
                        const ops::AttentionHeads& heads);
template <typename T>
void attention_decode(Tensor out, Tensor qkv_row, Tensor kcache, Tensor vcache, int64_t len,
                      const ops::AttentionHeads& heads);
template <typename T> void add(Tensor out, Tensor a, Tensor b);
template <typename T> void add_inplace(Tensor acc, Tensor x);
template <typename T>
void dropout(Tensor out, Tensor in, float p, uint64_t seed, uint64_t stream, uint64_t offset);
template <typename T>
void cross_entropy(Tensor losses, Tensor logits, Tensor targets, int64_t V, float dloss,
                   bool backward);
template <typename T> void xent_vocab_max(Tensor rowmax, Tensor logits, int64_t valid);
template <typename T>
void xent_vocab_sums(Tensor stats, Tensor logits, Tensor rowmax, Tensor targets,
                     int64_t vocab_start, int64_t valid);
template <typename T>
void xent_vocab_finish(Tensor losses, Tensor logits, Tensor rowmax, Tensor stats, Tensor targets,
                       int64_t vocab_start, int64_t valid, float dloss);
template <typename T>
void adamw_step(Tensor master, Tensor grad, Tensor m, Tensor v, const ops::AdamWParams& hp);
template <typename T> void sum_squares(Tensor out, Tensor x, bool accumulate);
template <typename T> void scale_inplace(Tensor x, float s);
void convert(Tensor dst, Tensor src);
void fill_zero(Tensor t);

}  // namespace tessera::cpu
