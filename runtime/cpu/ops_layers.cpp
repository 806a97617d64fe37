// CPU backend: embedding, LayerNorm, GELU, causal attention, dropout, softmax cross-entropy.
// Every loop is written in T so the same code runs in float (training) and double (reference
// and finite-difference checks).
#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/cpu/backend.h"
#include "runtime/error.h"
#include "runtime/philox.h"

namespace tessera::cpu {

template <typename T>
void encoder_forward(Tensor out, Tensor tokens, Tensor wte, Tensor wpe) {
  const int64_t B = tokens.dim(0), Tn = tokens.dim(1), C = wte.cols(), Vp = wte.dim(0);
  const int32_t* tok = tokens.ptr<int32_t>();
  T* o = out.ptr<T>();
  const T *e = wte.ptr<T>(), *p = wpe.ptr<T>();
#pragma omp parallel for
  for (int64_t bt = 0; bt < B * Tn; ++bt) {
    const int64_t id = tok[bt];
    TS_ASSERT(id >= 0 && id < Vp, "encoder_forward: token id " + std::to_string(id) +
                                      " outside the vocabulary");
    const T* er = e + id * C;
    const T* pr = p + (bt % Tn) * C;
    for (int64_t c = 0; c < C; ++c) o[bt * C + c] = er[c] + pr[c];
  }
}

template <typename T>
void encoder_backward(Tensor dwte, Tensor dwpe, Tensor dout, Tensor tokens) {
  const int64_t B = tokens.dim(0), Tn = tokens.dim(1), C = dwte.cols();
  const int32_t* tok = tokens.ptr<int32_t>();
  const T* d = dout.ptr<T>();
  T* de = dwte.ptr<T>();
  // Parallel over channels: two rows with the same token never race.
#pragma omp parallel for
  for (int64_t c = 0; c < C; ++c)
    for (int64_t bt = 0; bt < B * Tn; ++bt) de[tok[bt] * C + c] += d[bt * C + c];
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
}

template <typename T>
void gelu_forward(Tensor out, Tensor in) {
  const int64_t n = in.numel();
  const T* x = in.ptr<T>();
  T* o = out.ptr<T>();
#pragma omp parallel for simd
  for (int64_t i = 0; i < n; ++i) {
    const T u = kGeluScale<T> * (x[i] + T(0.044715) * x[i] * x[i] * x[i]);
    o[i] = T(0.5) * x[i] * (T(1) + std::tanh(u));
  }
}

template <typename T>
void gelu_backward(Tensor din, Tensor in, Tensor dout) {
  const int64_t n = in.numel();
  const T *x = in.ptr<T>(), *d = dout.ptr<T>();
  T* o = din.ptr<T>();
#pragma omp parallel for simd
  for (int64_t i = 0; i < n; ++i) {
    const T u = kGeluScale<T> * (x[i] + T(0.044715) * x[i] * x[i] * x[i]);
    const T th = std::tanh(u);
    const T du = kGeluScale<T> * (T(1) + T(3) * T(0.044715) * x[i] * x[i]);
    o[i] = d[i] * (T(0.5) * (T(1) + th) + T(0.5) * x[i] * (T(1) - th * th) * du);
  }
}

template <typename T>
void attention_forward(Tensor out, Tensor probs, Tensor qkv, int64_t NH) {
  const int64_t B = qkv.dim(0), Tn = qkv.dim(1), C3 = qkv.dim(2), C = C3 / 3, HS = C / NH;
  const T scale = T(1) / std::sqrt(static_cast<T>(HS));
  const T* in = qkv.ptr<T>();
  T *o = out.ptr<T>(), *P = probs.ptr<T>();
#pragma omp parallel for collapse(2)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < NH; ++h) {
      T* Pbh = P + (b * NH + h) * Tn * Tn;
      for (int64_t t = 0; t < Tn; ++t) {
        const T* q = in + (b * Tn + t) * C3 + h * HS;
        T* prow = Pbh + t * Tn;
        T maxv = -INFINITY;
        for (int64_t s = 0; s <= t; ++s) {
          const T* k = in + (b * Tn + s) * C3 + C + h * HS;
          T dot = 0;
          for (int64_t i = 0; i < HS; ++i) dot += q[i] * k[i];
          prow[s] = dot * scale;
          maxv = std::max(maxv, prow[s]);
        }
        T sum = 0;
        for (int64_t s = 0; s <= t; ++s) sum += (prow[s] = std::exp(prow[s] - maxv));
        const T inv = T(1) / sum;
        for (int64_t s = 0; s <= t; ++s) prow[s] *= inv;
        for (int64_t s = t + 1; s < Tn; ++s) prow[s] = 0;
        T* orow = o + (b * Tn + t) * C + h * HS;
        for (int64_t i = 0; i < HS; ++i) orow[i] = 0;
        for (int64_t s = 0; s <= t; ++s) {
          const T* v = in + (b * Tn + s) * C3 + 2 * C + h * HS;
          for (int64_t i = 0; i < HS; ++i) orow[i] += prow[s] * v[i];
        }
      }
    }
}

template <typename T>
void attention_backward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor probs, int64_t NH) {
  const int64_t B = qkv.dim(0), Tn = qkv.dim(1), C3 = qkv.dim(2), C = C3 / 3, HS = C / NH;
  const T scale = T(1) / std::sqrt(static_cast<T>(HS));
  const T *in = qkv.ptr<T>(), *d = dout.ptr<T>(), *P = probs.ptr<T>();
  T* g = dqkv.ptr<T>();
  std::memset(g, 0, dqkv.bytes());
  // Each (b, h) touches only its own head's columns of dqkv: no races.
#pragma omp parallel for collapse(2)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < NH; ++h) {
      const T* Pbh = P + (b * NH + h) * Tn * Tn;
      std::vector<T> dp(Tn);
      for (int64_t t = 0; t < Tn; ++t) {
        const T* prow = Pbh + t * Tn;
        const T* drow = d + (b * Tn + t) * C + h * HS;
        // dv[s] += p[t,s] * dout[t];  dp[s] = dout[t] . v[s]
        T dot_pdp = 0;
        for (int64_t s = 0; s <= t; ++s) {
          const T* v = in + (b * Tn + s) * C3 + 2 * C + h * HS;
          T* dv = g + (b * Tn + s) * C3 + 2 * C + h * HS;
          T acc = 0;
          for (int64_t i = 0; i < HS; ++i) {
            dv[i] += prow[s] * drow[i];
            acc += drow[i] * v[i];
          }
          dp[s] = acc;
          dot_pdp += prow[s] * acc;
        }
        // softmax backward, then through the scaled dot product.
        const T* q = in + (b * Tn + t) * C3 + h * HS;
        T* dq = g + (b * Tn + t) * C3 + h * HS;
        for (int64_t s = 0; s <= t; ++s) {
          const T ds = prow[s] * (dp[s] - dot_pdp) * scale;
          const T* k = in + (b * Tn + s) * C3 + C + h * HS;
          T* dk = g + (b * Tn + s) * C3 + C + h * HS;
          for (int64_t i = 0; i < HS; ++i) {
            dq[i] += ds * k[i];
            dk[i] += ds * q[i];
          }
        }
      }
    }
}

template <typename T>
void dropout(Tensor out, Tensor in, float p, uint64_t seed, uint64_t stream) {
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
    o[i] = philox::uniform(seed, stream, static_cast<uint64_t>(i)) >= p ? x[i] * keep_scale : T(0);
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
  template void encoder_forward<T>(Tensor, Tensor, Tensor, Tensor);                           \
  template void encoder_backward<T>(Tensor, Tensor, Tensor, Tensor);                          \
  template void layernorm_forward<T>(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, float);  \
  template void layernorm_backward<T>(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, \
                                      Tensor);                                                \
  template void gelu_forward<T>(Tensor, Tensor);                                              \
  template void gelu_backward<T>(Tensor, Tensor, Tensor);                                     \
  template void attention_forward<T>(Tensor, Tensor, Tensor, int64_t);                        \
  template void attention_backward<T>(Tensor, Tensor, Tensor, Tensor, int64_t);               \
  template void dropout<T>(Tensor, Tensor, float, uint64_t, uint64_t);                        \
  template void cross_entropy<T>(Tensor, Tensor, Tensor, int64_t, float, bool);
TS_INSTANTIATE(float)
TS_INSTANTIATE(double)

}  // namespace tessera::cpu
