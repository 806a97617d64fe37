// CPU backend: GEMMs (OpenBLAS), elementwise arithmetic, reductions, conversions.
#include <cblas.h>
#include <omp.h>

#include <algorithm>

#include <cmath>
#include <cstring>

#include "runtime/cpu/backend.h"
#include "runtime/error.h"

namespace tessera::cpu {
namespace {

// Row-major C(M,N) = op(A) op(B) + beta * C on one thread, for float and double.
template <typename T>
void gemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* A,
                 int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  const auto ta = trans_a ? CblasTrans : CblasNoTrans;
  const auto tb = trans_b ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
  else
    cblas_dgemm(CblasRowMajor, ta, tb, M, N, K, 1.0, A, lda, B, ldb, beta, C, ldc);
}

// One thread pool for everything: the rows of C are split across the OpenMP threads, each
// calling a single-threaded BLAS. With OpenBLAS's own pool beside OpenMP's, idle threads of
// one pool spin on the cores the other needs (measured: a third of all CPU time, see
// bench/RESULTS.md). The split changes no value: each row's dot products are the same.
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
#pragma omp parallel
  {
    const int64_t nt = omp_get_num_threads(), id = omp_get_thread_num();
    const int64_t chunk = ((M + nt - 1) / nt + 15) / 16 * 16;
    const int64_t m0 = std::min(M, id * chunk), m1 = std::min(M, m0 + chunk);
    if (m1 > m0)
      gemm_serial<T>(trans_a, trans_b, m1 - m0, N, K, trans_a ? A + m0 : A + m0 * lda, lda, B,
                     ldb, beta, C + m0 * ldc, ldc);
  }
}

void check_same_numel(const Tensor& a, const Tensor& b, const char* op) {
  TS_ASSERT(a.numel() == b.numel(),
            std::string(op) + ": shapes " + a.shape.str() + " and " + b.shape.str() + " differ");
}

}  // namespace

template <typename T>
void matmul_forward(Tensor out, Tensor in, Tensor weight, Tensor bias) {
  const int64_t N = in.rows(), C = in.cols(), OC = weight.dim(0);
  TS_ASSERT(weight.cols() == C && out.rows() == N && out.cols() == OC,
            "matmul_forward: out " + out.shape.str() + " in " + in.shape.str() + " weight " +
                weight.shape.str());
  T* o = out.ptr<T>();
  gemm<T>(false, true, N, OC, C, in.ptr<T>(), C, weight.ptr<T>(), C, T(0), o, OC);
  if (!bias.empty()) {
    const T* b = bias.ptr<T>();
#pragma omp parallel for
    for (int64_t n = 0; n < N; ++n)
      for (int64_t j = 0; j < OC; ++j) o[n * OC + j] += b[j];
  }
}

template <typename T>
void matmul_backward(Tensor din, Tensor dweight, Tensor dbias, Tensor dout, Tensor in,
                     Tensor weight) {
  const int64_t N = in.rows(), C = in.cols(), OC = weight.dim(0);
  TS_ASSERT(dout.rows() == N && dout.cols() == OC, "matmul_backward: dout " + dout.shape.str());
  if (!din.empty())  // din (N,C) = dout (N,OC) @ weight (OC,C)
    gemm<T>(false, false, N, C, OC, dout.ptr<T>(), OC, weight.ptr<T>(), C, T(0), din.ptr<T>(), C);
  if (!dweight.empty())  // dweight (OC,C) += dout^T (OC,N) @ in (N,C)
    gemm<T>(true, false, OC, C, N, dout.ptr<T>(), OC, in.ptr<T>(), C, T(1), dweight.ptr<T>(), C);
  if (!dbias.empty()) {
    const T* d = dout.ptr<T>();
    T* db = dbias.ptr<T>();
#pragma omp parallel for
    for (int64_t j = 0; j < OC; ++j) {
      T s = 0;
      for (int64_t n = 0; n < N; ++n) s += d[n * OC + j];
      db[j] += s;
    }
  }
}

template <typename T>
void add(Tensor out, Tensor a, Tensor b) {
  check_same_numel(a, b, "add");
  check_same_numel(out, a, "add");
  T* o = out.ptr<T>();
  const T *x = a.ptr<T>(), *y = b.ptr<T>();
  const int64_t n = out.numel();
#pragma omp parallel for simd
  for (int64_t i = 0; i < n; ++i) o[i] = x[i] + y[i];
}

template <typename T>
void add_inplace(Tensor acc, Tensor x) {
  check_same_numel(acc, x, "add_inplace");
  T* a = acc.ptr<T>();
  const T* b = x.ptr<T>();
  const int64_t n = acc.numel();
#pragma omp parallel for simd
  for (int64_t i = 0; i < n; ++i) a[i] += b[i];
}

template <typename T>
void sum_squares(Tensor out, Tensor x, bool accumulate) {
  const T* p = x.ptr<T>();
  const int64_t n = x.numel();
  double s = 0;  // double accumulation: the norm must not depend on summation order much
#pragma omp parallel for reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(p[i]) * p[i];
  T* o = out.ptr<T>();
  o[0] = static_cast<T>(accumulate ? o[0] + s : s);
}

template <typename T>
void scale_inplace(Tensor x, float s) {
  T* p = x.ptr<T>();
  const int64_t n = x.numel();
#pragma omp parallel for simd
  for (int64_t i = 0; i < n; ++i) p[i] *= static_cast<T>(s);
}

namespace {
float bf16_to_float(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint16_t float_to_bf16(float f) {  // round to nearest even; NaN stays NaN
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
double load(const Tensor& t, int64_t i) {
  switch (t.dtype) {
    case DType::f32: return t.ptr<float>()[i];
    case DType::f64: return t.ptr<double>()[i];
    case DType::bf16: return bf16_to_float(t.ptr<uint16_t>()[i]);
    case DType::i32: return t.ptr<int32_t>()[i];
  }
  return 0;
}
void store(const Tensor& t, int64_t i, double v) {
  switch (t.dtype) {
    case DType::f32: t.ptr<float>()[i] = static_cast<float>(v); break;
    case DType::f64: t.ptr<double>()[i] = v; break;
    case DType::bf16: t.ptr<uint16_t>()[i] = float_to_bf16(static_cast<float>(v)); break;
    case DType::i32: t.ptr<int32_t>()[i] = static_cast<int32_t>(v); break;
  }
}
}  // namespace

void convert(Tensor dst, Tensor src) {
  check_same_numel(dst, src, "convert");
  if (dst.dtype == src.dtype) {
    if (dst.data != src.data) std::memcpy(dst.data, src.data, dst.bytes());
    return;
  }
  const int64_t n = dst.numel();
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) store(dst, i, load(src, i));
}

void fill_zero(Tensor t) { std::memset(t.data, 0, t.bytes()); }

#define TS_INSTANTIATE(T)                                                                \
  template void matmul_forward<T>(Tensor, Tensor, Tensor, Tensor);                       \
  template void matmul_backward<T>(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor);      \
  template void add<T>(Tensor, Tensor, Tensor);                                          \
  template void add_inplace<T>(Tensor, Tensor);                                          \
  template void sum_squares<T>(Tensor, Tensor, bool);                                    \
  template void scale_inplace<T>(Tensor, float);
TS_INSTANTIATE(float)
TS_INSTANTIATE(double)

}  // namespace tessera::cpu
