// The activations of the GPT-NeoX and LLaMA families: exact (erf) GELU and SwiGLU. Grid-stride
// loops, fp32 math, bf16 or f32 storage, as the tanh GELU in elementwise.cu.
//
//   gelu_exact(x)  = x Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2;
//   gelu_exact'(x) = Phi(x) + x phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi);
//   swiglu(g, u)   = silu(g) u,  silu(g) = g sigmoid(g);
//   d/dg = u sigmoid(g) (1 + g (1 - sigmoid(g))),  d/du = silu(g).
#include <utility>

#include "runtime/cuda/backend.h"
#include "runtime/cuda/state.cuh"

namespace tessera::cuda {
namespace {

constexpr int kBlock = 256;
constexpr float kInvSqrt2 = 0.7071067811865476f;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;

__device__ __forceinline__ float normal_cdf(float x) {
  return 0.5f * (1.0f + erff(x * kInvSqrt2));
}

// expf(-g) overflows to inf for g < -88: the quotient is then 0, the right limit.
__device__ __forceinline__ float sigmoid(float g) {
  return 1.0f / (1.0f + expf(-g));
}

template <typename T>
__global__ void gelu_exact_forward_kernel(T* out, const T* in, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float x = to_f32(in[i]);
    out[i] = Elem<T>::from_f32(x * normal_cdf(x));
  }
}

// din may alias dout: each element is read before it is written, by the same thread.
template <typename T>
__global__ void gelu_exact_backward_kernel(T* din, const T* in, const T* dout, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float x = to_f32(in[i]);
    const float grad = normal_cdf(x) + x * kInvSqrt2Pi * expf(-0.5f * x * x);
    din[i] = Elem<T>::from_f32(grad * to_f32(dout[i]));
  }
}

// One thread per (row, f): reads gate in[r, f] and up in[r, F + f].
template <typename T>
__global__ void swiglu_forward_kernel(T* out, const T* in, int64_t rows, int64_t F) {
  const int64_t n = rows * F;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / F, f = i - r * F;
    const float g = to_f32(in[r * 2 * F + f]), u = to_f32(in[r * 2 * F + F + f]);
    out[i] = Elem<T>::from_f32(g * sigmoid(g) * u);
  }
}

// The thread that writes din[r, f] and din[r, F + f] is the one that reads in[r, f],
// in[r, F + f] and dout[r, f], all before writing, so din may even alias in.
template <typename T>
__global__ void swiglu_backward_kernel(T* din, const T* in, const T* dout, int64_t rows,
                                       int64_t F) {
  const int64_t n = rows * F;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / F, f = i - r * F;
    const float g = to_f32(in[r * 2 * F + f]), u = to_f32(in[r * 2 * F + F + f]);
    const float dy = to_f32(dout[i]);
    const float sig = sigmoid(g);
    din[r * 2 * F + f] = Elem<T>::from_f32(dy * u * sig * (1.0f + g * (1.0f - sig)));
    din[r * 2 * F + F + f] = Elem<T>::from_f32(dy * g * sig);
  }
}

void check_same(const Tensor& a, const Tensor& b, const char* op) {
  TS_ASSERT(a.numel() == b.numel(), std::string(op) + ": shapes " + a.shape.str() + " and " +
                                        b.shape.str() + " differ in size");
  TS_ASSERT(a.dtype == b.dtype, std::string(op) + ": dtypes " + std::string(dtype_name(a.dtype)) +
                                    " and " + std::string(dtype_name(b.dtype)) + " differ");
}

// (rows, F) of a SwiGLU whose input `in` is (rows, 2F) and output-side tensor `half` (rows, F).
std::pair<int64_t, int64_t> swiglu_shape(const Tensor& half, const Tensor& in, const char* op) {
  const int64_t F = half.cols(), rows = half.rows();
  TS_ASSERT(in.cols() == 2 * F && in.rows() == rows, std::string(op) + ": in " + in.shape.str() +
                                                         " must be (N, 2F) for out/dout " +
                                                         half.shape.str() + " (N, F)");
  TS_ASSERT(in.dtype == half.dtype, std::string(op) + ": in and out/dout differ in dtype");
  return {rows, F};
}

}  // namespace

void gelu_exact_forward(Device& dev, Tensor out, Tensor in) {
  CudaState& s = state_of(dev);
  check_same(out, in, "gelu_exact_forward");
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_float(out.dtype, "gelu_exact_forward", false, [&](auto tag) {
    using T = typename decltype(tag)::type;
    gelu_exact_forward_kernel<T>
        <<<grid_size(s, n, kBlock), kBlock, 0, s.stream>>>(out.ptr<T>(), in.ptr<T>(), n);
  });
  check_launch();
}

void gelu_exact_backward(Device& dev, Tensor din, Tensor in, Tensor dout) {
  CudaState& s = state_of(dev);
  check_same(din, in, "gelu_exact_backward");
  check_same(din, dout, "gelu_exact_backward");
  const int64_t n = din.numel();
  if (n == 0) return;
  dispatch_float(din.dtype, "gelu_exact_backward", false, [&](auto tag) {
    using T = typename decltype(tag)::type;
    gelu_exact_backward_kernel<T><<<grid_size(s, n, kBlock), kBlock, 0, s.stream>>>(
        din.ptr<T>(), in.ptr<T>(), dout.ptr<T>(), n);
  });
  check_launch();
}

void swiglu_forward(Device& dev, Tensor out, Tensor in) {
  CudaState& s = state_of(dev);
  const auto [rows, F] = swiglu_shape(out, in, "swiglu_forward");
  if (rows * F == 0) return;
  dispatch_float(out.dtype, "swiglu_forward", false, [&](auto tag) {
    using T = typename decltype(tag)::type;
    swiglu_forward_kernel<T><<<grid_size(s, rows * F, kBlock), kBlock, 0, s.stream>>>(
        out.ptr<T>(), in.ptr<T>(), rows, F);
  });
  check_launch();
}

void swiglu_backward(Device& dev, Tensor din, Tensor in, Tensor dout) {
  CudaState& s = state_of(dev);
  const auto [rows, F] = swiglu_shape(dout, in, "swiglu_backward");
  check_same(din, in, "swiglu_backward");
  if (rows * F == 0) return;
  dispatch_float(din.dtype, "swiglu_backward", false, [&](auto tag) {
    using T = typename decltype(tag)::type;
    swiglu_backward_kernel<T><<<grid_size(s, rows * F, kBlock), kBlock, 0, s.stream>>>(
        din.ptr<T>(), in.ptr<T>(), dout.ptr<T>(), rows, F);
  });
  check_launch();
}

}  // namespace tessera::cuda
