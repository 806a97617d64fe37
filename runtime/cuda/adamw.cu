// Optimizer-side kernels: fused AdamW over fp32 master weights (optionally refreshing the bf16
// working copy in the same pass) and the sum of squares behind global-norm clipping.
#include <cmath>

#include "runtime/cuda/backend.h"
#include "runtime/cuda/state.cuh"

namespace tessera::cuda {
namespace {

constexpr int kBlock = 256;

struct AdamWConstants {
  float beta1, beta2, eps, grad_scale;
  float step_size;         // lr / (1 - beta1^t)
  float bias_correction2;  // sqrt(1 - beta2^t)
  float decay;             // 1 - lr * weight_decay
};

// One element per thread, all state fp32. ops.h's update
//   p -= lr * (m / (1-b1^t) / (sqrt(v / (1-b2^t)) + eps) + weight_decay * p)
// is evaluated in the algebraically equal form the CPU twin (and PyTorch) uses,
//   p = p * (1 - lr wd) - lr / (1-b1^t) * m / (sqrt(v) / sqrt(1-b2^t) + eps),
// so fp32 results agree to rounding. Decay applies to the pre-update weight (decoupled weight
// decay, Loshchilov & Hutter 2019).
template <typename W>
__global__ void adamw_kernel(float* master, const float* grad, float* m, float* v, W* working,
                             AdamWConstants k, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = grad[i] * k.grad_scale;
    const float mi = k.beta1 * m[i] + (1.0f - k.beta1) * g;
    const float vi = k.beta2 * v[i] + (1.0f - k.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float p =
        master[i] * k.decay - k.step_size * mi / (sqrtf(vi) / k.bias_correction2 + k.eps);
    master[i] = p;
    if (working) working[i] = Elem<W>::from_f32(p);
  }
}

// Per-thread fp32 partials, one block reduction, one atomic per block into out[0].
template <typename T>
__global__ void sum_squares_kernel(float* out, const T* x, int64_t n) {
  __shared__ float shared[32];
  float sum = 0.0f;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = to_f32(x[i]);
    sum += v * v;
  }
  sum = block_sum(sum, shared);
  if (threadIdx.x == 0) atomicAdd(out, sum);
}

}  // namespace

void adamw_step(Device& dev, Tensor master, Tensor grad, Tensor m, Tensor v, Tensor working,
                const ops::AdamWParams& hp) {
  CudaState& s = state_of(dev);
  check_dtype(master, DType::f32, "adamw_step master");
  check_dtype(grad, DType::f32, "adamw_step grad");
  check_dtype(m, DType::f32, "adamw_step m");
  check_dtype(v, DType::f32, "adamw_step v");
  const int64_t n = master.numel();
  TS_ASSERT(grad.numel() == n && m.numel() == n && v.numel() == n,
            "adamw_step: master, grad, m and v must have the same number of elements");
  TS_ASSERT(working.empty() || working.numel() == n,
            "adamw_step: working copy size != master size");
  TS_ASSERT(hp.step >= 1, "adamw_step: step is 1-based");
  if (n == 0) return;
  // Bias corrections and step constants in double on the host, as the CPU twin does.
  const double bc1 = 1.0 - std::pow(static_cast<double>(hp.beta1), static_cast<double>(hp.step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(hp.beta2), static_cast<double>(hp.step));
  const AdamWConstants k{
      hp.beta1,
      hp.beta2,
      hp.eps,
      hp.grad_scale,
      static_cast<float>(hp.lr / bc1),
      static_cast<float>(std::sqrt(bc2)),
      static_cast<float>(1.0 - static_cast<double>(hp.lr) * hp.weight_decay),
  };
  const unsigned grid = grid_size(s, n, kBlock);
  if (working.empty()) {
    adamw_kernel<float><<<grid, kBlock, 0, s.stream>>>(
        master.ptr<float>(), grad.ptr<float>(), m.ptr<float>(), v.ptr<float>(), nullptr, k, n);
  } else {
    dispatch_float(working.dtype, "adamw_step working", false, [&](auto tag) {
      using W = typename decltype(tag)::type;
      adamw_kernel<W><<<grid, kBlock, 0, s.stream>>>(master.ptr<float>(), grad.ptr<float>(),
                                                     m.ptr<float>(), v.ptr<float>(),
                                                     working.ptr<W>(), k, n);
    });
  }
  check_launch();
}

void sum_squares(Device& dev, Tensor out, Tensor x, bool accumulate) {
  CudaState& s = state_of(dev);
  check_dtype(out, DType::f32, "sum_squares out");
  TS_ASSERT(out.numel() >= 1, "sum_squares: out needs one element");
  // Stream-ordered zeroing instead of a host write: no synchronisation in the step.
  if (!accumulate) TS_CHECK_CUDA(cudaMemsetAsync(out.data, 0, sizeof(float), s.stream));
  const int64_t n = x.numel();
  if (n == 0) return;
  // A couple of blocks per SM: the work is bandwidth-bound and each block costs one atomic.
  const unsigned grid = static_cast<unsigned>(std::max<int64_t>(
      1, std::min<int64_t>(ceil_div(n, kBlock), int64_t{s.props.multiProcessorCount} * 2)));
  dispatch_float(x.dtype, "sum_squares", false, [&](auto tag) {
    using T = typename decltype(tag)::type;
    sum_squares_kernel<T><<<grid, kBlock, 0, s.stream>>>(out.ptr<float>(), x.ptr<T>(), n);
  });
  check_launch();
}

}  // namespace tessera::cuda
