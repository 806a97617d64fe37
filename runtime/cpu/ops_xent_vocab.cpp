// CPU backend: vocabulary-parallel cross-entropy (see ops.h). Each rank sees its slice of the
// vocabulary; the tensor-parallel all-reduces between the passes make rowmax and stats global.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "runtime/cpu/backend.h"
#include "runtime/error.h"

namespace tessera::cpu {

template <typename T>
void xent_vocab_max(Tensor rowmax, Tensor logits, int64_t valid) {
  const int64_t N = logits.rows(), Vl = logits.cols();
  TS_ASSERT(valid >= 0 && valid <= Vl && rowmax.numel() == N, "xent_vocab_max: shapes");
  const T* z = logits.ptr<T>();
  T* m = rowmax.ptr<T>();
#pragma omp parallel for
  for (int64_t n = 0; n < N; ++n) {
    T v = std::numeric_limits<T>::lowest();
    for (int64_t j = 0; j < valid; ++j) v = std::max(v, z[n * Vl + j]);
    m[n] = v;
  }
}

template <typename T>
void xent_vocab_sums(Tensor stats, Tensor logits, Tensor rowmax, Tensor targets,
                     int64_t vocab_start, int64_t valid) {
  const int64_t N = logits.rows(), Vl = logits.cols();
  TS_ASSERT(stats.numel() == 2 * N && targets.numel() == N, "xent_vocab_sums: shapes");
  const T *z = logits.ptr<T>(), *m = rowmax.ptr<T>();
  const int32_t* tgt = targets.ptr<int32_t>();
  T* s = stats.ptr<T>();
#pragma omp parallel for
  for (int64_t n = 0; n < N; ++n) {
    const T* row = z + n * Vl;
    T sum = 0;
    for (int64_t j = 0; j < valid; ++j) sum += std::exp(row[j] - m[n]);
    const int64_t y = static_cast<int64_t>(tgt[n]) - vocab_start;
    s[2 * n] = sum;
    s[2 * n + 1] = (y >= 0 && y < valid) ? row[y] : T(0);
  }
}

template <typename T>
void xent_vocab_finish(Tensor losses, Tensor logits, Tensor rowmax, Tensor stats, Tensor targets,
                       int64_t vocab_start, int64_t valid, float dloss) {
  const int64_t N = logits.rows(), Vl = logits.cols();
  T* z = logits.ptr<T>();
  const T *m = rowmax.ptr<T>(), *s = stats.ptr<T>();
  const int32_t* tgt = targets.ptr<int32_t>();
  T* L = losses.ptr<T>();
  const T d = static_cast<T>(dloss);
#pragma omp parallel for
  for (int64_t n = 0; n < N; ++n) {
    T* row = z + n * Vl;
    if (tgt[n] < 0) {
      L[n] = 0;
      if (dloss != 0.0f) std::memset(row, 0, Vl * sizeof(T));
      continue;
    }
    L[n] = m[n] + std::log(s[2 * n]) - s[2 * n + 1];
    if (dloss == 0.0f) continue;
    const T inv = T(1) / s[2 * n];
    for (int64_t j = 0; j < valid; ++j) row[j] = std::exp(row[j] - m[n]) * inv * d;
    for (int64_t j = valid; j < Vl; ++j) row[j] = 0;
    const int64_t y = static_cast<int64_t>(tgt[n]) - vocab_start;
    if (y >= 0 && y < valid) row[y] -= d;
  }
}

#define TS_INSTANTIATE(T)                                                                   \
  template void xent_vocab_max<T>(Tensor, Tensor, int64_t);                                 \
  template void xent_vocab_sums<T>(Tensor, Tensor, Tensor, Tensor, int64_t, int64_t);       \
  template void xent_vocab_finish<T>(Tensor, Tensor, Tensor, Tensor, Tensor, int64_t, int64_t, \
                                     float);
TS_INSTANTIATE(float)
TS_INSTANTIATE(double)

}  // namespace tessera::cpu
