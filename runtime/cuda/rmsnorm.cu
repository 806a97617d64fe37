// Fused RMSNorm forward/backward (Zhang & Sennrich 2019): one warp per row, fp32 statistics,
// laid out as layernorm.cu, whose conventions it keeps (rstd (N) f32, dweight (C) f32 +=).
//
// Forward:  rstd = 1/sqrt(sum(x^2)/C + eps), out = x * rstd * w.
// Backward, with xhat = x * rstd and g = w * dout (the layernorm gradient without the mean
// terms):  din = rstd * (g - xhat * mean(g * xhat));  dw += sum_rows dout * xhat.
// Two passes over the row, as layernorm.cu: any width works and the second read hits L1/L2.
#include "runtime/cuda/backend.h"
#include "runtime/cuda/state.cuh"

namespace tessera::cuda {
namespace {

constexpr int kRowsPerBlock = 8;  // warps per block
constexpr int kBlock = kRowsPerBlock * kWarpSize;

template <typename T>
__global__ void rmsnorm_forward_kernel(T* out, float* rstd, const T* in, const T* weight,
                                       int64_t rows, int C, float eps) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (row >= rows) return;  // whole warps leave together, so the shuffles stay full
  const T* x = in + row * C;
  T* y = out + row * C;

  float sq = 0.0f;
  for (int c = lane; c < C; c += kWarpSize) {
    const float v = to_f32(x[c]);
    sq += v * v;
  }
  const float s = rsqrtf(warp_sum(sq) / C + eps);
  for (int c = lane; c < C; c += kWarpSize)
    y[c] = Elem<T>::from_f32(to_f32(x[c]) * s * to_f32(weight[c]));
  if (lane == 0 && rstd) rstd[row] = s;
}

// din may alias dout: every lane reads dout[c] for its own columns in the first pass and
// overwrites exactly those columns in the second.
template <typename T>
__global__ void rmsnorm_backward_input_kernel(T* din, const T* dout, const T* in, const T* weight,
                                              const float* rstd, int64_t rows, int C) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (row >= rows) return;
  const T* x = in + row * C;
  const T* dy = dout + row * C;
  T* dx = din + row * C;
  const float s = rstd[row];

  float gx_sum = 0.0f;
  for (int c = lane; c < C; c += kWarpSize)
    gx_sum += to_f32(weight[c]) * to_f32(dy[c]) * to_f32(x[c]) * s;
  const float gx_mean = warp_sum(gx_sum) / C;
  for (int c = lane; c < C; c += kWarpSize) {
    const float g = to_f32(weight[c]) * to_f32(dy[c]);
    const float xhat = to_f32(x[c]) * s;
    dx[c] = Elem<T>::from_f32(s * (g - xhat * gx_mean));
  }
}

// Thread = column; the grid's y dimension splits the rows into chunks whose partial sums are
// added with one atomic per column and chunk (coalesced reads, few atomics).
template <typename T>
__global__ void rmsnorm_backward_weight_kernel(float* dweight, const T* dout, const T* in,
                                               const float* rstd, int64_t rows, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float dw = 0.0f;
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y)
    dw += to_f32(dout[r * C + c]) * to_f32(in[r * C + c]) * rstd[r];
  atomicAdd(dweight + c, dw);
}

void check_rstd(const Tensor& t, int64_t rows, const char* what) {
  check_dtype(t, DType::f32, what);
  TS_ASSERT(t.numel() == rows, std::string(what) + " " + t.shape.str() +
                                   " must have one entry per row (" + std::to_string(rows) + ")");
}

}  // namespace

void rmsnorm_forward(Device& dev, Tensor out, Tensor rstd, Tensor in, Tensor weight, float eps) {
  CudaState& s = state_of(dev);
  const int64_t rows = in.rows(), C = in.cols();
  TS_ASSERT(out.numel() == in.numel() && out.dtype == in.dtype,
            "rmsnorm_forward: out and in differ in size or dtype");
  TS_ASSERT(weight.numel() == C && weight.dtype == in.dtype,
            "rmsnorm_forward: weight must be (C) in the activations' dtype");
  if (!rstd.empty()) check_rstd(rstd, rows, "rmsnorm_forward rstd");
  TS_ASSERT(C <= 0x7fffffff, "rmsnorm_forward: row too long");
  if (rows == 0) return;
  const unsigned grid = static_cast<unsigned>(ceil_div(rows, kRowsPerBlock));
  dispatch_float(in.dtype, "rmsnorm_forward", false, [&](auto tag) {
    using T = typename decltype(tag)::type;
    rmsnorm_forward_kernel<T><<<grid, kBlock, 0, s.stream>>>(out.ptr<T>(), rstd.ptr<float>(),
                                                             in.ptr<T>(), weight.ptr<T>(), rows,
                                                             static_cast<int>(C), eps);
  });
  check_launch();
}

void rmsnorm_backward(Device& dev, Tensor din, Tensor dweight, Tensor dout, Tensor in,
                      Tensor weight, Tensor rstd) {
  CudaState& s = state_of(dev);
  const int64_t rows = in.rows(), C = in.cols();
  TS_ASSERT(dout.numel() == in.numel() && dout.dtype == in.dtype,
            "rmsnorm_backward: dout and in differ in size or dtype");
  TS_ASSERT(weight.numel() == C && weight.dtype == in.dtype,
            "rmsnorm_backward: weight must be (C) in the activations' dtype");
  check_rstd(rstd, rows, "rmsnorm_backward rstd");
  if (!dweight.empty()) {
    check_dtype(dweight, DType::f32, "rmsnorm_backward dweight");
    TS_ASSERT(dweight.numel() == C, "rmsnorm_backward: dweight length != C");
  }
  if (!din.empty())
    TS_ASSERT(din.numel() == in.numel() && din.dtype == in.dtype,
              "rmsnorm_backward: din and in differ in size or dtype");
  TS_ASSERT(C <= 0x7fffffff, "rmsnorm_backward: row too long");
  if (rows == 0) return;

  dispatch_float(in.dtype, "rmsnorm_backward", false, [&](auto tag) {
    using T = typename decltype(tag)::type;
    // The weight gradient first: it reads dout, which din may overwrite.
    if (!dweight.empty()) {
      constexpr int kColBlock = 256;
      const int64_t col_blocks = ceil_div(C, kColBlock);
      const int64_t target = int64_t{s.props.multiProcessorCount} * 8;
      const int64_t row_blocks =
          std::clamp<int64_t>(ceil_div(target, col_blocks), 1, std::min<int64_t>(rows, 65535));
      const dim3 grid(static_cast<unsigned>(col_blocks), static_cast<unsigned>(row_blocks));
      rmsnorm_backward_weight_kernel<T>
          <<<grid, kColBlock, 0, s.stream>>>(dweight.ptr<float>(), dout.ptr<T>(), in.ptr<T>(),
                                             rstd.ptr<float>(), rows, static_cast<int>(C));
      check_launch();
    }
    if (!din.empty()) {
      const unsigned grid = static_cast<unsigned>(ceil_div(rows, kRowsPerBlock));
      rmsnorm_backward_input_kernel<T>
          <<<grid, kBlock, 0, s.stream>>>(din.ptr<T>(), dout.ptr<T>(), in.ptr<T>(), weight.ptr<T>(),
                                          rstd.ptr<float>(), rows, static_cast<int>(C));
      check_launch();
    }
  });
}

}  // namespace tessera::cuda
