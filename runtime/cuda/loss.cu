// Fused softmax cross-entropy: one block per row of logits (N, Vp).
//
// Pass 1 is an online softmax (Milakov & Gimelshein, "Online normalizer calculation for
// softmax", 2018): each thread keeps a running (max, sum of exp(x - max)) over its columns,
// and the pairs are merged across the block, giving lse = max + log(sum) in one read of the
// row. loss = lse - logit[target]. Pass 2 (training) overwrites the row in place with
// (softmax - onehot) * dloss, so the probabilities are never stored.
#include <cmath>

#include "runtime/cuda/backend.h"
#include "runtime/cuda/state.cuh"

namespace tessera::cuda {
namespace {

constexpr int kBlock = 512;

// Merges (m2, s2) into (m, s). An empty partial has m = -inf and contributes nothing; the
// early return keeps exp(-inf - -inf) = NaN out of the sum.
__device__ __forceinline__ void softmax_merge(float& m, float& s, float m2, float s2) {
  const float mx = fmaxf(m, m2);
  if (mx == -INFINITY) return;
  s = s * expf(m - mx) + s2 * expf(m2 - mx);
  m = mx;
}

template <typename T, bool kBackward>
__global__ void cross_entropy_kernel(float* losses, T* logits, const int32_t* targets, int64_t Vp,
                                     int64_t V, float dloss) {
  __shared__ float shared_m[32], shared_s[32];
  __shared__ float shared_lse;
  const int64_t row = blockIdx.x;
  T* x = logits + row * Vp;
  const int32_t target = targets[row];
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int warps = blockDim.x / kWarpSize;

  float m = -INFINITY, s = 0.0f;
  for (int64_t c = threadIdx.x; c < V; c += blockDim.x) softmax_merge(m, s, to_f32(x[c]), 1.0f);
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, offset);
    const float s2 = __shfl_xor_sync(0xffffffffu, s, offset);
    softmax_merge(m, s, m2, s2);
  }
  if (lane == 0) {
    shared_m[warp] = m;
    shared_s[warp] = s;
  }
  __syncthreads();
  if (warp == 0) {
    m = lane < warps ? shared_m[lane] : -INFINITY;
    s = lane < warps ? shared_s[lane] : 0.0f;
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
      const float m2 = __shfl_xor_sync(0xffffffffu, m, offset);
      const float s2 = __shfl_xor_sync(0xffffffffu, s, offset);
      softmax_merge(m, s, m2, s2);
    }
    if (lane == 0) {
      const float lse = m + logf(s);
      shared_lse = lse;
      // Read before the barrier below: pass 2 overwrites this element. A target >= V is a
      // data bug; it yields a NaN loss rather than a read past the row.
      float loss = 0.0f;
      if (target >= V)
        loss = NAN;
      else if (target >= 0)
        loss = lse - to_f32(x[target]);
      losses[row] = loss;
    }
  }
  if (!kBackward) return;
  __syncthreads();
  const float lse = shared_lse;
  for (int64_t c = threadIdx.x; c < Vp; c += blockDim.x) {
    float d = 0.0f;
    if (target >= 0 && c < V) {
      const float p = expf(to_f32(x[c]) - lse);
      d = (p - (c == target ? 1.0f : 0.0f)) * dloss;
    }
    x[c] = Elem<T>::from_f32(d);
  }
}

template <bool kBackward>
void cross_entropy(Device& dev, Tensor losses, Tensor logits, Tensor targets, int64_t V,
                   float dloss, const char* op) {
  CudaState& s = state_of(dev);
  check_dtype(losses, DType::f32, (std::string(op) + " losses").c_str());
  check_dtype(targets, DType::i32, (std::string(op) + " targets").c_str());
  const int64_t N = logits.rows(), Vp = logits.cols();
  TS_ASSERT(V > 0 && V <= Vp, std::string(op) + ": V=" + std::to_string(V) +
                                  " must be in [1, Vp=" + std::to_string(Vp) + "]");
  TS_ASSERT(losses.numel() == N && targets.numel() == N,
            std::string(op) + ": losses and targets need one entry per row of logits " +
                logits.shape.str());
  TS_ASSERT(N <= 0x7fffffff, std::string(op) + ": too many rows for one grid");
  if (N == 0) return;
  dispatch_float(logits.dtype, op, false, [&](auto tag) {
    using T = typename decltype(tag)::type;
    cross_entropy_kernel<T, kBackward><<<static_cast<unsigned>(N), kBlock, 0, s.stream>>>(
        losses.ptr<float>(), logits.ptr<T>(), targets.ptr<int32_t>(), Vp, V, dloss);
  });
  check_launch();
}

}  // namespace

void cross_entropy_forward_backward(Device& dev, Tensor losses, Tensor logits, Tensor targets,
                                    int64_t V, float dloss) {
  cross_entropy<true>(dev, losses, logits, targets, V, dloss, "cross_entropy_forward_backward");
}

void cross_entropy_forward(Device& dev, Tensor losses, Tensor logits, Tensor targets, int64_t V) {
  cross_entropy<false>(dev, losses, logits, targets, V, 0.0f, "cross_entropy_forward");
}

}  // namespace tessera::cuda
