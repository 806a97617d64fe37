// CPU backend: embedding, LayerNorm, GELU, causal attention, dropout, softmax cross-entropy.
// Every loop is written in T so the same code runs in float (training) and double (reference
// and finite-difference checks).
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "runtime/cpu/backend.h"
#include "runtime/cpu/fast_math.h"
#include "runtime/error.h"
#include "runtime/philox.h"

namespace tessera::cpu {

template <typename T>
void encoder_forward(Tensor out, Tensor tokens, Tensor wte, Tensor wpe, int64_t vocab_start) {
  const int64_t B = tokens.dim(0), Tn = tokens.dim(1), C = wte.cols(), Vl = wte.dim(0);
  const int32_t* tok = tokens.ptr<int32_t>();
  T* o = out.ptr<T>();
  const T *e = wte.ptr<T>(), *p = wpe.empty() ? nullptr : wpe.ptr<T>();
#pragma omp parallel for
  for (int64_t bt = 0; bt < B * Tn; ++bt) {
    const int64_t id = tok[bt] - vocab_start;
    // Ids past this slice belong to another tensor-parallel rank (the shard loader has
    // already checked every id against the vocabulary).
    TS_ASSERT(tok[bt] >= 0, "encoder_forward: negative token id " + std::to_string(tok[bt]));
    T* orow = o + bt * C;
    if (id >= 0 && id < Vl) {
      const T* er = e + id * C;
      for (int64_t c = 0; c < C; ++c) orow[c] = er[c];
    } else {
      for (int64_t c = 0; c < C; ++c) orow[c] = T(0);
    }
    if (p) {
      const T* pr = p + (bt % Tn) * C;
      for (int64_t c = 0; c < C; ++c) orow[c] += pr[c];
    }
  }
}

template <typename T>
void encoder_backward(Tensor dwte, Tensor dwpe, Tensor dout, Tensor tokens, int64_t vocab_start) {
  const int64_t B = tokens.dim(0), Tn = tokens.dim(1), C = dout.numel() / tokens.numel();
  const int32_t* tok = tokens.ptr<int32_t>();
  const T* d = dout.ptr<T>();
  if (!dwte.empty()) {
    T* de = dwte.ptr<T>();
    const int64_t Vl = dwte.dim(0);
    // Parallel over channels: two rows with the same token never race.
#pragma omp parallel for
    for (int64_t c = 0; c < C; ++c)
      for (int64_t bt = 0; bt < B * Tn; ++bt) {
        const int64_t id = tok[bt] - vocab_start;
        if (id >= 0 && id < Vl) de[id * C + c] += d[bt * C + c];
      }
  }
  if (!dwpe.empty()) {
    T* dp = dwpe.ptr<T>();
#pragma omp parallel for
    for (int64_t t = 0; t < Tn; ++t)
      for (int64_t b = 0; b < B; ++b)
        for (int64_t c = 0; c < C; ++c) dp[t * C + c] += d[(b * Tn + t) * C + c];
  }
}

template <typename T>
void layernorm_forward(Tensor out, Tensor mean, Tensor rstd, Tensor in, Tensor weight,
                       Tensor bias, float eps) {
  const int64_t N = in.rows(), C = in.cols();
  const T *x = in.ptr<T>(), *w = weight.ptr<T>(), *b = bias.ptr<T>();
  T *o = out.ptr<T>(), *mu = mean.ptr<T>(), *rs = rstd.ptr<T>();
#pragma omp parallel for
  for (int64_t n = 0; n < N; ++n) {
    const T* xr = x + n * C;
    T m = 0;
    for (int64_t c = 0; c < C; ++c) m += xr[c];
    m /= C;
    T v = 0;
    for (int64_t c = 0; c < C; ++c) v += (xr[c] - m) * (xr[c] - m);
    v /= C;
    const T r = T(1) / std::sqrt(v + static_cast<T>(eps));
    for (int64_t c = 0; c < C; ++c) o[n * C + c] = (xr[c] - m) * r * w[c] + b[c];
    mu[n] = m;
    rs[n] = r;
  }
}

template <typename T>
void layernorm_backward(Tensor din, Tensor dweight, Tensor dbias, Tensor dout, Tensor in,
                        Tensor weight, Tensor mean, Tensor rstd) {
  const int64_t N = in.rows(), C = in.cols();
  const T *x = in.ptr<T>(), *w = weight.ptr<T>(), *d = dout.ptr<T>();
  const T *mu = mean.ptr<T>(), *rs = rstd.ptr<T>();
  T *dx = din.ptr<T>(), *dw = dweight.ptr<T>(), *db = dbias.ptr<T>();
#pragma omp parallel for
  for (int64_t n = 0; n < N; ++n) {
    const T* xr = x + n * C;
    const T* dr = d + n * C;
    // dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = dout * w
    T sum_dxhat = 0, sum_dxhat_xhat = 0;
    for (int64_t c = 0; c < C; ++c) {
      const T xhat = (xr[c] - mu[n]) * rs[n];
      const T dxhat = dr[c] * w[c];
      sum_dxhat += dxhat;
      sum_dxhat_xhat += dxhat * xhat;
    }
    sum_dxhat /= C;
    sum_dxhat_xhat /= C;
    for (int64_t c = 0; c < C; ++c) {
      const T xhat = (xr[c] - mu[n]) * rs[n];
      dx[n * C + c] = rs[n] * (dr[c] * w[c] - sum_dxhat - xhat * sum_dxhat_xhat);
    }
  }
#pragma omp parallel for
  for (int64_t c = 0; c < C; ++c) {
    T sw = 0, sb = 0;
    for (int64_t n = 0; n < N; ++n) {
      sw += d[n * C + c] * (x[n * C + c] - mu[n]) * rs[n];
      sb += d[n * C + c];
    }
    dw[c] += sw;
    db[c] += sb;
  }
}

namespace {

template <typename T>
constexpr T kGeluScale = T(0.7978845608028654);  // sqrt(2/pi)

// GELU's 0.5 (1 + tanh(u)) written as the logistic function of 2u: the same value without
// tanh's cancellation for negative u, and with an exp the float loops can vectorize.
template <typename T>
inline T gelu_gate(T x, T& du) {
  const T u = kGeluScale<T> * (x + T(0.044715) * x * x * x);
  du = kGeluScale<T> * (T(1) + T(3) * T(0.044715) * x * x);
  return T(1) / (T(1) + exp_kernel<T>(T(-2) * u));
}

}  // namespace

template <typename T>
void gelu_forward(Tensor out, Tensor in) {
  const int64_t n = in.numel();
  const T* x = in.ptr<T>();
  T* o = out.ptr<T>();
#pragma omp parallel for simd
  for (int64_t i = 0; i < n; ++i) {
    T du;
    o[i] = x[i] * gelu_gate<T>(x[i], du);
  }
}

template <typename T>
void gelu_backward(Tensor din, Tensor in, Tensor dout) {
  const int64_t n = in.numel();
  const T *x = in.ptr<T>(), *d = dout.ptr<T>();
  T* o = din.ptr<T>();
  // d/dx [x sigma(2u)] = sigma + 2 x sigma (1 - sigma) du   (sigma = 0.5 (1 + tanh u))
#pragma omp parallel for simd
  for (int64_t i = 0; i < n; ++i) {
    T du;
    const T g = gelu_gate<T>(x[i], du);
    o[i] = d[i] * (g + T(2) * x[i] * g * (T(1) - g) * du);
  }
}

// Causal attention, one (batch, head) per task. Within a head, query rows are taken kRows at a
// time: the keys every row of the block sees (s <= t0) are loaded once for the whole block, and
// each row then finishes its own few remaining keys (t0 < s <= t) alone, so no row ever reads
// a later position. The `omp simd` loops vectorize over the head dimension (their dot products
// may be reassociated); sums over keys run in increasing s, and backward adds a block's rows'
// contributions to dk and dv together.
namespace {
constexpr int64_t kRows = 4;
}  // namespace

template <typename T>
void attention_forward(Tensor out, Tensor probs, Tensor qkv, const ops::AttentionHeads& heads) {
  const int64_t B = qkv.dim(0), Tn = qkv.dim(1), C3 = heads.width(), NH = heads.q_heads;
  const int64_t HS = heads.head_size, C = NH * HS, group = NH / heads.kv_heads;
  const T scale = T(1) / std::sqrt(static_cast<T>(HS));
#pragma omp parallel for collapse(2)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < NH; ++h) {
      // Rows of Q, K, V are C3 (the packed width) apart, rows of O are C apart; P is (T, T).
      // Query head h reads key/value head h / group.
      const T* Q = qkv.ptr<T>() + b * Tn * C3 + h * HS;
      const T* K = qkv.ptr<T>() + b * Tn * C3 + (NH + h / group) * HS;
      const T* V = K + heads.kv_heads * HS;
      T* O = out.ptr<T>() + b * Tn * C + h * HS;
      const T slope = heads.alibi_heads > 0
                          ? static_cast<T>(ops::alibi_slope(heads.alibi_first_head + h, heads.alibi_heads))
                          : T(0);
      T* P = probs.ptr<T>() + (b * NH + h) * Tn * Tn;
      // Scores: P[t, s] = q_t . k_s / sqrt(HS) for s <= t.
      for (int64_t t0 = 0; t0 < Tn; t0 += kRows) {
        const int64_t rows = std::min(kRows, Tn - t0), shared = rows == kRows ? t0 + 1 : 0;
        if (rows == kRows) {
          const T *q0 = Q + t0 * C3, *q1 = q0 + C3, *q2 = q1 + C3, *q3 = q2 + C3;
          for (int64_t s = 0; s < shared; ++s) {
            const T* k = K + s * C3;
            T d0 = 0, d1 = 0, d2 = 0, d3 = 0;
#pragma omp simd reduction(+ : d0, d1, d2, d3)
            for (int64_t i = 0; i < HS; ++i) {
              d0 += q0[i] * k[i];
              d1 += q1[i] * k[i];
              d2 += q2[i] * k[i];
              d3 += q3[i] * k[i];
            }
            P[t0 * Tn + s] = d0 * scale;
            P[(t0 + 1) * Tn + s] = d1 * scale;
            P[(t0 + 2) * Tn + s] = d2 * scale;
            P[(t0 + 3) * Tn + s] = d3 * scale;
          }
        }
        for (int64_t t = t0; t < t0 + rows; ++t)
          for (int64_t s = shared; s <= t; ++s) {
            const T *q = Q + t * C3, *k = K + s * C3;
            T dot = 0;
#pragma omp simd reduction(+ : dot)
            for (int64_t i = 0; i < HS; ++i) dot += q[i] * k[i];
            P[t * Tn + s] = dot * scale;
          }
      }
      // Softmax over s <= t; the masked future is exactly zero. ALiBi adds -slope (t - s).
      for (int64_t t = 0; t < Tn; ++t) {
        T* prow = P + t * Tn;
        if (slope != T(0))
          for (int64_t s = 0; s <= t; ++s) prow[s] -= slope * static_cast<T>(t - s);
        T maxv = -INFINITY;
        for (int64_t s = 0; s <= t; ++s) maxv = std::max(maxv, prow[s]);
        T sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int64_t s = 0; s <= t; ++s) {
          const T e = exp_kernel<T>(prow[s] - maxv);
          prow[s] = e;
          sum += e;
        }
        const T inv = T(1) / sum;
#pragma omp simd
        for (int64_t s = 0; s <= t; ++s) prow[s] *= inv;
        for (int64_t s = t + 1; s < Tn; ++s) prow[s] = 0;
      }
      // Outputs: o_t = sum over s <= t of P[t, s] v_s.
      for (int64_t t0 = 0; t0 < Tn; t0 += kRows) {
        const int64_t rows = std::min(kRows, Tn - t0), shared = rows == kRows ? t0 + 1 : 0;
        for (int64_t t = t0; t < t0 + rows; ++t) std::fill(O + t * C, O + t * C + HS, T(0));
        if (rows == kRows) {
          T *o0 = O + t0 * C, *o1 = o0 + C, *o2 = o1 + C, *o3 = o2 + C;
          const T* p0 = P + t0 * Tn;
          for (int64_t s = 0; s < shared; ++s) {
            const T* v = V + s * C3;
            const T a0 = p0[s], a1 = p0[Tn + s], a2 = p0[2 * Tn + s], a3 = p0[3 * Tn + s];
#pragma omp simd
            for (int64_t i = 0; i < HS; ++i) {
              o0[i] += a0 * v[i];
              o1[i] += a1 * v[i];
              o2[i] += a2 * v[i];
              o3[i] += a3 * v[i];
            }
          }
        }
        for (int64_t t = t0; t < t0 + rows; ++t)
          for (int64_t s = shared; s <= t; ++s) {
            const T* v = V + s * C3;
            const T a = P[t * Tn + s];
            T* o = O + t * C;
#pragma omp simd
            for (int64_t i = 0; i < HS; ++i) o[i] += a * v[i];
          }
      }
    }
}

template <typename T>
void attention_backward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor probs,
                        const ops::AttentionHeads& heads) {
  const int64_t B = qkv.dim(0), Tn = qkv.dim(1), C3 = heads.width(), NH = heads.q_heads;
  const int64_t HS = heads.head_size, C = NH * HS, KV = heads.kv_heads, group = NH / KV;
  const T scale = T(1) / std::sqrt(static_cast<T>(HS));
  std::memset(dqkv.data, 0, dqkv.bytes());
  // Each (b, kv head) task owns the columns of its key/value head and of the query heads that
  // read it, which it visits in order: no races, and the sums into dk/dv do not depend on the
  // thread count.
#pragma omp parallel for collapse(2)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t g = 0; g < KV; ++g)
    for (int64_t h = g * group; h < (g + 1) * group; ++h) {
      const T* Q = qkv.ptr<T>() + b * Tn * C3 + h * HS;
      const T* K = qkv.ptr<T>() + b * Tn * C3 + (NH + g) * HS;
      const T* V = K + KV * HS;
      T* dQ = dqkv.ptr<T>() + b * Tn * C3 + h * HS;
      T* dK = dqkv.ptr<T>() + b * Tn * C3 + (NH + g) * HS;
      T* dV = dK + KV * HS;
      const T* dO = dout.ptr<T>() + b * Tn * C + h * HS;
      const T* P = probs.ptr<T>() + (b * NH + h) * Tn * Tn;
      std::vector<T> dp(kRows * Tn);  // dp[j][s] = do_t . v_s for the block's rows t = t0 + j
      for (int64_t t0 = 0; t0 < Tn; t0 += kRows) {
        const int64_t rows = std::min(kRows, Tn - t0), shared = rows == kRows ? t0 + 1 : 0;
        T pdp[kRows] = {};  // sum over s of P[t, s] dp[t, s]
        // dv_s += P[t, s] do_t;  dp[t, s] = do_t . v_s
        if (rows == kRows) {
          const T *do0 = dO + t0 * C, *do1 = do0 + C, *do2 = do1 + C, *do3 = do2 + C;
          const T* p0 = P + t0 * Tn;
          for (int64_t s = 0; s < shared; ++s) {
            const T* v = V + s * C3;
            T* dv = dV + s * C3;
            const T a0 = p0[s], a1 = p0[Tn + s], a2 = p0[2 * Tn + s], a3 = p0[3 * Tn + s];
            T e0 = 0, e1 = 0, e2 = 0, e3 = 0;
#pragma omp simd reduction(+ : e0, e1, e2, e3)
            for (int64_t i = 0; i < HS; ++i) {
              dv[i] += a0 * do0[i] + a1 * do1[i] + a2 * do2[i] + a3 * do3[i];
              e0 += do0[i] * v[i];
              e1 += do1[i] * v[i];
              e2 += do2[i] * v[i];
              e3 += do3[i] * v[i];
            }
            dp[s] = e0;
            dp[Tn + s] = e1;
            dp[2 * Tn + s] = e2;
            dp[3 * Tn + s] = e3;
            pdp[0] += a0 * e0;
            pdp[1] += a1 * e1;
            pdp[2] += a2 * e2;
            pdp[3] += a3 * e3;
          }
        }
        for (int64_t j = 0; j < rows; ++j) {
          const T* dor = dO + (t0 + j) * C;
          for (int64_t s = shared; s <= t0 + j; ++s) {
            const T* v = V + s * C3;
            T* dv = dV + s * C3;
            const T a = P[(t0 + j) * Tn + s];
            T e = 0;
#pragma omp simd reduction(+ : e)
            for (int64_t i = 0; i < HS; ++i) {
              dv[i] += a * dor[i];
              e += dor[i] * v[i];
            }
            dp[j * Tn + s] = e;
            pdp[j] += a * e;
          }
        }
        // Softmax backward, then through the scaled dot product:
        // ds = P (dp - pdp) / sqrt(HS);  dq_t += ds k_s;  dk_s += ds q_t
        auto ds = [&](int64_t j, int64_t s) {
          return P[(t0 + j) * Tn + s] * (dp[j * Tn + s] - pdp[j]) * scale;
        };
        if (rows == kRows) {
          const T *q0 = Q + t0 * C3, *q1 = q0 + C3, *q2 = q1 + C3, *q3 = q2 + C3;
          T *dq0 = dQ + t0 * C3, *dq1 = dq0 + C3, *dq2 = dq1 + C3, *dq3 = dq2 + C3;
          for (int64_t s = 0; s < shared; ++s) {
            const T* k = K + s * C3;
            T* dk = dK + s * C3;
            const T g0 = ds(0, s), g1 = ds(1, s), g2 = ds(2, s), g3 = ds(3, s);
#pragma omp simd
            for (int64_t i = 0; i < HS; ++i) {
              dq0[i] += g0 * k[i];
              dq1[i] += g1 * k[i];
              dq2[i] += g2 * k[i];
              dq3[i] += g3 * k[i];
              dk[i] += g0 * q0[i] + g1 * q1[i] + g2 * q2[i] + g3 * q3[i];
            }
          }
        }
        for (int64_t j = 0; j < rows; ++j) {
          const T* q = Q + (t0 + j) * C3;
          T* dq = dQ + (t0 + j) * C3;
          for (int64_t s = shared; s <= t0 + j; ++s) {
            const T* k = K + s * C3;
            T* dk = dK + s * C3;
            const T g = ds(j, s);
#pragma omp simd
            for (int64_t i = 0; i < HS; ++i) {
              dq[i] += g * k[i];
              dk[i] += g * q[i];
            }
          }
        }
      }
    }
}

template <typename T>
void dropout(Tensor out, Tensor in, float p, uint64_t seed, uint64_t stream, uint64_t offset) {
  const int64_t n = in.numel();
  const T* x = in.ptr<T>();
  T* o = out.ptr<T>();
  if (p <= 0.0f) {
    if (o != x) std::memcpy(o, x, in.bytes());
    return;
  }
  const T keep_scale = T(1) / (T(1) - static_cast<T>(p));
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i)
    o[i] = philox::uniform(seed, stream, offset + static_cast<uint64_t>(i)) >= p ? x[i] * keep_scale
                                                                                : T(0);
}

template <typename T>
void cross_entropy(Tensor losses, Tensor logits, Tensor targets, int64_t V, float dloss,
                   bool backward) {
  const int64_t N = logits.rows(), Vp = logits.cols();
  TS_ASSERT(V <= Vp && targets.numel() == N, "cross_entropy: shapes");
  T* z = logits.ptr<T>();
  T* L = losses.ptr<T>();
  const int32_t* tgt = targets.ptr<int32_t>();
#pragma omp parallel for
  for (int64_t n = 0; n < N; ++n) {
    T* row = z + n * Vp;
    const int32_t y = tgt[n];
    if (y < 0) {
      L[n] = 0;
      if (backward) std::memset(row, 0, Vp * sizeof(T));
      continue;
    }
    TS_ASSERT(y < V, "cross_entropy: target id outside the vocabulary");
    T maxv = row[0];
    for (int64_t v = 1; v < V; ++v) maxv = std::max(maxv, row[v]);
    T sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(row[v] - maxv);
    const T lse = maxv + std::log(sum);
    L[n] = lse - row[y];
    if (!backward) continue;
    const T inv = T(1) / sum;
    for (int64_t v = 0; v < V; ++v) row[v] = std::exp(row[v] - maxv) * inv * static_cast<T>(dloss);
    row[y] -= static_cast<T>(dloss);
    for (int64_t v = V; v < Vp; ++v) row[v] = 0;
  }
}

#define TS_INSTANTIATE(T)                                                                     \
  template void encoder_forward<T>(Tensor, Tensor, Tensor, Tensor, int64_t);                  \
  template void encoder_backward<T>(Tensor, Tensor, Tensor, Tensor, int64_t);                 \
  template void layernorm_forward<T>(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, float);  \
  template void layernorm_backward<T>(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, \
                                      Tensor);                                                \
  template void gelu_forward<T>(Tensor, Tensor);                                              \
  template void gelu_backward<T>(Tensor, Tensor, Tensor);                                     \
  template void attention_forward<T>(Tensor, Tensor, Tensor, const ops::AttentionHeads&);     \
  template void attention_backward<T>(Tensor, Tensor, Tensor, Tensor,                        \
                                      const ops::AttentionHeads&);                            \
  template void dropout<T>(Tensor, Tensor, float, uint64_t, uint64_t, uint64_t);              \
  template void cross_entropy<T>(Tensor, Tensor, Tensor, int64_t, float, bool);
TS_INSTANTIATE(float)
TS_INSTANTIATE(double)

}  // namespace tessera::cpu
