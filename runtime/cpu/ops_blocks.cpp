// CPU backend: the components that distinguish the model families — exact GELU, SwiGLU,
// RMSNorm and rotary position embedding. Written in T like ops_layers.cpp, so float trains and
// double serves the reference and the finite-difference checks.
#include <algorithm>
#include <cmath>
#include <vector>

#include "runtime/cpu/backend.h"
#include "runtime/cpu/fast_math.h"
#include "runtime/error.h"

namespace tessera::cpu {
namespace {

constexpr int64_t kColumnBlock = 16;  // columns per task of a weight-gradient sum over rows

}  // namespace

template <typename T>
void gelu_exact_forward(Tensor out, Tensor in) {
  const int64_t n = in.numel();
  const T* x = in.ptr<T>();
  T* o = out.ptr<T>();
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) o[i] = T(0.5) * x[i] * (T(1) + std::erf(x[i] * T(M_SQRT1_2)));
}

template <typename T>
void gelu_exact_backward(Tensor din, Tensor in, Tensor dout) {
  const int64_t n = in.numel();
  const T *x = in.ptr<T>(), *d = dout.ptr<T>();
  T* o = din.ptr<T>();
  // d/dx [x Phi(x)] = Phi(x) + x phi(x)
  const T inv_sqrt_2pi = T(0.3989422804014327);
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) {
    const T cdf = T(0.5) * (T(1) + std::erf(x[i] * T(M_SQRT1_2)));
    const T pdf = inv_sqrt_2pi * std::exp(T(-0.5) * x[i] * x[i]);
    o[i] = d[i] * (cdf + x[i] * pdf);
  }
}

template <typename T>
void swiglu_forward(Tensor out, Tensor in) {
  const int64_t N = in.rows(), F = out.cols();
  TS_ASSERT(in.cols() == 2 * F && out.rows() == N, "swiglu_forward: in must be (N, 2F), out (N, F)");
  const T* x = in.ptr<T>();
  T* o = out.ptr<T>();
#pragma omp parallel for
  for (int64_t n = 0; n < N; ++n) {
    const T *gate = x + n * 2 * F, *up = gate + F;
    T* orow = o + n * F;
#pragma omp simd
    for (int64_t f = 0; f < F; ++f) orow[f] = gate[f] / (T(1) + exp_kernel<T>(-gate[f])) * up[f];
  }
}

template <typename T>
void swiglu_backward(Tensor din, Tensor in, Tensor dout) {
  const int64_t N = in.rows(), F = dout.cols();
  TS_ASSERT(in.cols() == 2 * F && din.cols() == 2 * F, "swiglu_backward: shapes");
  const T *x = in.ptr<T>(), *d = dout.ptr<T>();
  T* dx = din.ptr<T>();
#pragma omp parallel for
  for (int64_t n = 0; n < N; ++n) {
    const T *gate = x + n * 2 * F, *up = gate + F, *drow = d + n * F;
    T *dgate = dx + n * 2 * F, *dup = dgate + F;
    // silu(g) = g s(g), silu'(g) = s(g) (1 + g (1 - s(g)))
#pragma omp simd
    for (int64_t f = 0; f < F; ++f) {
      const T s = T(1) / (T(1) + exp_kernel<T>(-gate[f]));
      const T silu = gate[f] * s;
      dup[f] = drow[f] * silu;
      dgate[f] = drow[f] * up[f] * s * (T(1) + gate[f] * (T(1) - s));
    }
  }
}

template <typename T>
void rmsnorm_forward(Tensor out, Tensor rstd, Tensor in, Tensor weight, float eps) {
  const int64_t N = in.rows(), C = in.cols();
  const T *x = in.ptr<T>(), *w = weight.ptr<T>();
  T *o = out.ptr<T>(), *rs = rstd.ptr<T>();
#pragma omp parallel for
  for (int64_t n = 0; n < N; ++n) {
    const T* xr = x + n * C;
    T ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t c = 0; c < C; ++c) ss += xr[c] * xr[c];
    const T r = T(1) / std::sqrt(ss / C + static_cast<T>(eps));
    for (int64_t c = 0; c < C; ++c) o[n * C + c] = xr[c] * r * w[c];
    rs[n] = r;
  }
}

template <typename T>
void rmsnorm_backward(Tensor din, Tensor dweight, Tensor dout, Tensor in, Tensor weight,
                      Tensor rstd) {
  const int64_t N = in.rows(), C = in.cols();
  const T *x = in.ptr<T>(), *w = weight.ptr<T>(), *d = dout.ptr<T>(), *rs = rstd.ptr<T>();
  T *dx = din.ptr<T>(), *dw = dweight.ptr<T>();
#pragma omp parallel for
  for (int64_t n = 0; n < N; ++n) {
    const T *xr = x + n * C, *dr = d + n * C;
    // y = x r w, r = (mean(x^2) + eps)^-1/2:  dx = r (dy w - xhat mean(dy w xhat)), xhat = x r
    T dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t c = 0; c < C; ++c) dot += dr[c] * w[c] * xr[c] * rs[n];
    dot /= C;
    for (int64_t c = 0; c < C; ++c) dx[n * C + c] = rs[n] * (dr[c] * w[c] - xr[c] * rs[n] * dot);
  }
  // dweight: each column summed over the rows in order, a block of columns at a time so every
  // row read is a contiguous run (a column walk strides C floats per element).
#pragma omp parallel for
  for (int64_t c0 = 0; c0 < C; c0 += kColumnBlock) {
    const int64_t width = std::min(kColumnBlock, C - c0);
    T sw[kColumnBlock] = {};
    for (int64_t n = 0; n < N; ++n)
      for (int64_t j = 0; j < width; ++j) sw[j] += d[n * C + c0 + j] * x[n * C + c0 + j] * rs[n];
    for (int64_t j = 0; j < width; ++j) dw[c0 + j] += sw[j];
  }
}

template <typename T>
void rope(Tensor qkv, const ops::AttentionHeads& heads, int64_t rotary_dims, float theta,
          int64_t position_offset, bool backward) {
  const int64_t B = qkv.dim(0), Tn = qkv.dim(1), W = heads.width(), HS = heads.head_size;
  const int64_t half = rotary_dims / 2, rotated_heads = heads.q_heads + heads.kv_heads;
  TS_ASSERT(qkv.cols() == W && rotary_dims % 2 == 0 && rotary_dims <= HS, "rope: shapes");
  // One table of (cos, sin) per position, shared by every head and sample.
  std::vector<T> cs(static_cast<size_t>(Tn * half)), sn(cs.size());
  for (int64_t i = 0; i < half; ++i) {
    const T freq = std::pow(static_cast<T>(theta), -T(2 * i) / static_cast<T>(rotary_dims));
    for (int64_t t = 0; t < Tn; ++t) {
      const T angle = static_cast<T>(position_offset + t) * freq;
      cs[t * half + i] = std::cos(angle);
      sn[t * half + i] = backward ? -std::sin(angle) : std::sin(angle);
    }
  }
  T* base = qkv.ptr<T>();
#pragma omp parallel for collapse(2)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < Tn; ++t) {
      T* row = base + (b * Tn + t) * W;
      const T *c = cs.data() + t * half, *s = sn.data() + t * half;
      for (int64_t h = 0; h < rotated_heads; ++h) {  // q heads, then k heads: contiguous
        T* x = row + h * HS;
        for (int64_t i = 0; i < half; ++i) {
          const T x1 = x[i], x2 = x[i + half];
          x[i] = x1 * c[i] - x2 * s[i];
          x[i + half] = x2 * c[i] + x1 * s[i];
        }
      }
    }
}

template <typename T>
void attention_decode(Tensor out, Tensor qkv_row, Tensor kcache, Tensor vcache, int64_t len,
                      const ops::AttentionHeads& heads) {
  const int64_t NH = heads.q_heads, KV = heads.kv_heads, HS = heads.head_size, group = NH / KV;
  TS_ASSERT(len >= 1 && len <= kcache.dim(0) && kcache.cols() == KV * HS, "attention_decode: shapes");
  const T scale = T(1) / std::sqrt(static_cast<T>(HS));
  const T *q = qkv_row.ptr<T>(), *K = kcache.ptr<T>(), *V = vcache.ptr<T>();
  T* o = out.ptr<T>();
  const int64_t t = len - 1;  // the query's position
  std::vector<T> p(static_cast<size_t>(len));
  for (int64_t h = 0; h < NH; ++h) {
    const int64_t g = h / group;
    const T slope = heads.alibi_heads > 0
                        ? static_cast<T>(ops::alibi_slope(heads.alibi_first_head + h, heads.alibi_heads))
                        : T(0);
    T maxv = -INFINITY;
    for (int64_t s = 0; s < len; ++s) {
      T dot = 0;
      for (int64_t i = 0; i < HS; ++i) dot += q[h * HS + i] * K[s * KV * HS + g * HS + i];
      p[s] = dot * scale - slope * static_cast<T>(t - s);
      maxv = std::max(maxv, p[s]);
    }
    T sum = 0;
    for (int64_t s = 0; s < len; ++s) sum += p[s] = std::exp(p[s] - maxv);
    for (int64_t i = 0; i < HS; ++i) {
      T acc = 0;
      for (int64_t s = 0; s < len; ++s) acc += p[s] * V[s * KV * HS + g * HS + i];
      o[h * HS + i] = acc / sum;
    }
  }
}

#define TS_INSTANTIATE(T)                                                                   \
  template void gelu_exact_forward<T>(Tensor, Tensor);                                      \
  template void gelu_exact_backward<T>(Tensor, Tensor, Tensor);                             \
  template void swiglu_forward<T>(Tensor, Tensor);                                          \
  template void swiglu_backward<T>(Tensor, Tensor, Tensor);                                 \
  template void rmsnorm_forward<T>(Tensor, Tensor, Tensor, Tensor, float);                  \
  template void rmsnorm_backward<T>(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor);        \
  template void rope<T>(Tensor, const ops::AttentionHeads&, int64_t, float, int64_t, bool);      \
  template void attention_decode<T>(Tensor, Tensor, Tensor, Tensor, int64_t,                    \
                                    const ops::AttentionHeads&);
TS_INSTANTIATE(float)
TS_INSTANTIATE(double)

}  // namespace tessera::cpu
