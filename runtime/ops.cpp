// Dispatch of every op to its CPU (float/double) or CUDA implementation, from the device and
// dtype of the op's first tensor.
#include "runtime/ops.h"

#include <cmath>

#include "runtime/cpu/backend.h"
#include "runtime/error.h"
#ifdef TESSERA_CUDA
#include "runtime/cuda/backend.h"
#endif

namespace tessera::ops {
namespace {

template <typename... Args>
void unused(const Args&...) {}

enum class Impl { cpu_f32, cpu_f64, cuda };

Impl impl_of(const Device& dev, const Tensor& t) {
  TS_ASSERT(t.device == dev.kind(), "tensor on " + std::string(device_name(t.device)) +
                                        " passed to an op on " + std::string(device_name(dev.kind())));
  if (dev.kind() == DeviceKind::cuda) return Impl::cuda;
  if (t.dtype == DType::f64) return Impl::cpu_f64;
  TS_ASSERT(t.dtype == DType::f32, "CPU ops run in f32 or f64, got " +
                                       std::string(dtype_name(t.dtype)));
  return Impl::cpu_f32;
}

#ifdef TESSERA_CUDA
#define TS_CUDA_CASE(op, ...) \
  case Impl::cuda: return cuda::op(dev, __VA_ARGS__);
#else
#define TS_CUDA_CASE(op, ...) \
  case Impl::cuda: TS_ASSERT(false, "CUDA backend not built"); return;
#endif

// Calls cpu::op<float|double>(args...) or cuda::op(dev, args...).
#define TS_DISPATCH(op, first, ...)                                  \
  switch (impl_of(dev, first)) {                                     \
    case Impl::cpu_f32: return cpu::op<float>(__VA_ARGS__);          \
    case Impl::cpu_f64: return cpu::op<double>(__VA_ARGS__);         \
    TS_CUDA_CASE(op, __VA_ARGS__)                                    \
  }

}  // namespace

void encoder_forward(Device& dev, Tensor out, Tensor tokens, Tensor wte, Tensor wpe,
                     int64_t vocab_start) {
  TS_DISPATCH(encoder_forward, out, out, tokens, wte, wpe, vocab_start);
}
void encoder_backward(Device& dev, Tensor dwte, Tensor dwpe, Tensor dout, Tensor tokens,
                      int64_t vocab_start) {
  TS_DISPATCH(encoder_backward, dout, dwte, dwpe, dout, tokens, vocab_start);
}
void layernorm_forward(Device& dev, Tensor out, Tensor mean, Tensor rstd, Tensor in,
                       Tensor weight, Tensor bias, float eps) {
  TS_DISPATCH(layernorm_forward, out, out, mean, rstd, in, weight, bias, eps);
}
void layernorm_backward(Device& dev, Tensor din, Tensor dweight, Tensor dbias, Tensor dout,
                        Tensor in, Tensor weight, Tensor mean, Tensor rstd) {
  TS_DISPATCH(layernorm_backward, dout, din, dweight, dbias, dout, in, weight, mean, rstd);
}
void matmul_forward(Device& dev, Tensor out, Tensor in, Tensor weight, Tensor bias) {
  TS_DISPATCH(matmul_forward, out, out, in, weight, bias);
}
void matmul_bias_gelu_forward(Device& dev, Tensor out, Tensor pre, Tensor in, Tensor weight,
                              Tensor bias) {
  if (dev.kind() == DeviceKind::cuda) {
#ifdef TESSERA_CUDA
    return cuda::matmul_bias_gelu_forward(dev, out, pre, in, weight, bias);
#endif
  }
  matmul_forward(dev, pre, in, weight, bias);
  gelu_forward(dev, out, pre);
}
void matmul_backward(Device& dev, Tensor din, Tensor dweight, Tensor dbias, Tensor dout,
                     Tensor in, Tensor weight) {
  TS_DISPATCH(matmul_backward, dout, din, dweight, dbias, dout, in, weight);
}
void gelu_forward(Device& dev, Tensor out, Tensor in) { TS_DISPATCH(gelu_forward, out, out, in); }
void gelu_backward(Device& dev, Tensor din, Tensor in, Tensor dout) {
  TS_DISPATCH(gelu_backward, din, din, in, dout);
}

void gelu_exact_forward(Device& dev, Tensor out, Tensor in) {
  TS_DISPATCH(gelu_exact_forward, out, out, in);
}
void gelu_exact_backward(Device& dev, Tensor din, Tensor in, Tensor dout) {
  TS_DISPATCH(gelu_exact_backward, din, din, in, dout);
}
void swiglu_forward(Device& dev, Tensor out, Tensor in) { TS_DISPATCH(swiglu_forward, out, out, in); }
void swiglu_backward(Device& dev, Tensor din, Tensor in, Tensor dout) {
  TS_DISPATCH(swiglu_backward, din, din, in, dout);
}
void rmsnorm_forward(Device& dev, Tensor out, Tensor rstd, Tensor in, Tensor weight, float eps) {
  TS_DISPATCH(rmsnorm_forward, out, out, rstd, in, weight, eps);
}
void rmsnorm_backward(Device& dev, Tensor din, Tensor dweight, Tensor dout, Tensor in,
                      Tensor weight, Tensor rstd) {
  TS_DISPATCH(rmsnorm_backward, dout, din, dweight, dout, in, weight, rstd);
}

double alibi_slope(int64_t g, int64_t n) {
  // The first 2^k slopes (2^k the largest power of two <= n) are 2^(-8 i / 2^k), i = 1..2^k;
  // the remaining n - 2^k heads take every other slope of the 2^(k+1) sequence (odd i).
  int64_t p = 1;
  while (p * 2 <= n) p *= 2;
  if (g < p) return std::pow(2.0, -8.0 * static_cast<double>(g + 1) / static_cast<double>(p));
  return std::pow(2.0, -8.0 * static_cast<double>(2 * (g - p) + 1) / static_cast<double>(2 * p));
}

void rope_forward(Device& dev, Tensor qkv, const AttentionHeads& heads, int64_t rotary_dims,
                  float theta, int64_t position_offset) {
  TS_DISPATCH(rope, qkv, qkv, heads, rotary_dims, theta, position_offset, false);
}
void rope_backward(Device& dev, Tensor dqkv, const AttentionHeads& heads, int64_t rotary_dims,
                   float theta, int64_t position_offset) {
  TS_DISPATCH(rope, dqkv, dqkv, heads, rotary_dims, theta, position_offset, true);
}

AuxSpec attention_aux_shape(DeviceKind device, DType compute, int64_t B, int64_t T, int64_t NH) {
  if (device == DeviceKind::cuda) return {Shape{B, NH, T}, DType::f32};
  return {Shape{B, NH, T, T}, compute};
}
void attention_forward(Device& dev, Tensor out, Tensor aux, Tensor qkv, const AttentionHeads& heads) {
  TS_ASSERT(qkv.cols() == heads.width() && out.cols() == heads.q_heads * heads.head_size &&
                heads.q_heads % heads.kv_heads == 0,
            "attention_forward: qkv/out widths do not match the heads");
  TS_DISPATCH(attention_forward, out, out, aux, qkv, heads);
}
void attention_backward(Device& dev, Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor aux,
                        const AttentionHeads& heads) {
  unused(out);  // the CPU twin keeps the probabilities and does not need the output
  switch (impl_of(dev, dqkv)) {
    case Impl::cpu_f32: return cpu::attention_backward<float>(dqkv, dout, qkv, aux, heads);
    case Impl::cpu_f64: return cpu::attention_backward<double>(dqkv, dout, qkv, aux, heads);
    TS_CUDA_CASE(attention_backward, dqkv, dout, qkv, out, aux, heads)
  }
}
void attention_decode(Device& dev, Tensor out, Tensor qkv_row, Tensor kcache, Tensor vcache,
                      int64_t len, const AttentionHeads& heads) {
  switch (impl_of(dev, out)) {
    case Impl::cpu_f32: return cpu::attention_decode<float>(out, qkv_row, kcache, vcache, len, heads);
    case Impl::cpu_f64: return cpu::attention_decode<double>(out, qkv_row, kcache, vcache, len, heads);
    case Impl::cuda: TS_ASSERT(false, "attention_decode runs on the CPU (generation)"); return;
  }
}
void add(Device& dev, Tensor out, Tensor a, Tensor b) { TS_DISPATCH(add, out, out, a, b); }
void add_inplace(Device& dev, Tensor acc, Tensor x) { TS_DISPATCH(add_inplace, acc, acc, x); }
void dropout_forward(Device& dev, Tensor out, Tensor in, float p, uint64_t seed, uint64_t stream,
                     uint64_t offset) {
  switch (impl_of(dev, out)) {
    case Impl::cpu_f32: return cpu::dropout<float>(out, in, p, seed, stream, offset);
    case Impl::cpu_f64: return cpu::dropout<double>(out, in, p, seed, stream, offset);
    TS_CUDA_CASE(dropout_forward, out, in, p, seed, stream, offset)
  }
}
void dropout_backward(Device& dev, Tensor din, Tensor dout, float p, uint64_t seed,
                      uint64_t stream, uint64_t offset) {
  // The mask is the same function of (seed, stream, offset + i), so backward is the same scaling.
  switch (impl_of(dev, din)) {
    case Impl::cpu_f32: return cpu::dropout<float>(din, dout, p, seed, stream, offset);
    case Impl::cpu_f64: return cpu::dropout<double>(din, dout, p, seed, stream, offset);
    TS_CUDA_CASE(dropout_backward, din, dout, p, seed, stream, offset)
  }
}
void xent_vocab_max(Device& dev, Tensor rowmax, Tensor logits, int64_t valid) {
  switch (impl_of(dev, logits)) {
    case Impl::cpu_f32: return cpu::xent_vocab_max<float>(rowmax, logits, valid);
    case Impl::cpu_f64: return cpu::xent_vocab_max<double>(rowmax, logits, valid);
    TS_CUDA_CASE(xent_vocab_max, rowmax, logits, valid)
  }
}
void xent_vocab_sums(Device& dev, Tensor stats, Tensor logits, Tensor rowmax, Tensor targets,
                     int64_t vocab_start, int64_t valid) {
  switch (impl_of(dev, logits)) {
    case Impl::cpu_f32: return cpu::xent_vocab_sums<float>(stats, logits, rowmax, targets, vocab_start, valid);
    case Impl::cpu_f64: return cpu::xent_vocab_sums<double>(stats, logits, rowmax, targets, vocab_start, valid);
    TS_CUDA_CASE(xent_vocab_sums, stats, logits, rowmax, targets, vocab_start, valid)
  }
}
void xent_vocab_finish(Device& dev, Tensor losses, Tensor logits, Tensor rowmax, Tensor stats,
                       Tensor targets, int64_t vocab_start, int64_t valid, float dloss) {
  switch (impl_of(dev, logits)) {
    case Impl::cpu_f32:
      return cpu::xent_vocab_finish<float>(losses, logits, rowmax, stats, targets, vocab_start, valid, dloss);
    case Impl::cpu_f64:
      return cpu::xent_vocab_finish<double>(losses, logits, rowmax, stats, targets, vocab_start, valid, dloss);
    TS_CUDA_CASE(xent_vocab_finish, losses, logits, rowmax, stats, targets, vocab_start, valid, dloss)
  }
}
void cross_entropy_forward_backward(Device& dev, Tensor losses, Tensor logits, Tensor targets,
                                    int64_t V, float dloss) {
  switch (impl_of(dev, logits)) {
    case Impl::cpu_f32: return cpu::cross_entropy<float>(losses, logits, targets, V, dloss, true);
    case Impl::cpu_f64: return cpu::cross_entropy<double>(losses, logits, targets, V, dloss, true);
    TS_CUDA_CASE(cross_entropy_forward_backward, losses, logits, targets, V, dloss)
  }
}
void cross_entropy_forward(Device& dev, Tensor losses, Tensor logits, Tensor targets, int64_t V) {
  switch (impl_of(dev, logits)) {
    case Impl::cpu_f32: return cpu::cross_entropy<float>(losses, logits, targets, V, 0, false);
    case Impl::cpu_f64: return cpu::cross_entropy<double>(losses, logits, targets, V, 0, false);
    TS_CUDA_CASE(cross_entropy_forward, losses, logits, targets, V)
  }
}
void adamw_step(Device& dev, Tensor master, Tensor grad, Tensor m, Tensor v, Tensor working,
                const AdamWParams& hp) {
  TS_ASSERT(working.empty() || dev.kind() == DeviceKind::cuda, "adamw: working copy on CPU");
  switch (impl_of(dev, master)) {
    case Impl::cpu_f32: return cpu::adamw_step<float>(master, grad, m, v, hp);
    case Impl::cpu_f64: return cpu::adamw_step<double>(master, grad, m, v, hp);
    TS_CUDA_CASE(adamw_step, master, grad, m, v, working, hp)
  }
}
void sum_squares(Device& dev, Tensor out, Tensor x, bool accumulate) {
  TS_DISPATCH(sum_squares, out, out, x, accumulate);
}
void scale_inplace(Device& dev, Tensor x, float s) { TS_DISPATCH(scale_inplace, x, x, s); }
void convert(Device& dev, Tensor dst, Tensor src) {
  TS_ASSERT(dst.numel() == src.numel(), "convert: element counts differ");
  if (dev.kind() == DeviceKind::cuda) {
#ifdef TESSERA_CUDA
    return cuda::convert(dev, dst, src);
#endif
  }
  cpu::convert(dst, src);
}
void fill_zero(Device& dev, Tensor t) {
  if (t.empty()) return;
  if (dev.kind() == DeviceKind::cuda) {
#ifdef TESSERA_CUDA
    return cuda::fill_zero(dev, t);
#endif
  }
  cpu::fill_zero(t);
}

}  // namespace tessera::ops
