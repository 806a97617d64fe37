// Fused LayerNorm forward/backward: one warp per row, fp32 statistics.
//
// Forward (biased variance, as GPT-2):  mean = sum(x)/C, var = sum((x-mean)^2)/C,
//   rstd = 1/sqrt(var + eps), out = (x - mean) * rstd * w + b.
// Backward, with xhat = (x - mean) * rstd and g = w * dout:
//   din = rstd * (g - mean(g) - xhat * mean(g * xhat));  dw += sum_rows dout * xhat;
//   db += sum_rows dout.
// Two passes over the row instead of caching it in registers: rows of any width work, and the
// second read hits L1/L2.
#include "runtime/cuda/backend.h"
#include "runtime/cuda/state.cuh"

namespace tessera::cuda {
namespace {

constexpr int kRowsPerBlock = 8;  // warps per block
constexpr int kBlock = kRowsPerBlock * kWarpSize;

template <typename T>
__global__ void layernorm_forward_kernel(T* out, float* mean, float* rstd, const T* in,
                                         const T* weight, const T* bias, int64_t rows, int C,
                                         float eps) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (row >= rows) return;  // whole warps leave together, so the shuffles stay full
  const T* x = in + row * C;
  T* y = out + row * C;

  float sum = 0.0f;
  for (int c = lane; c < C; c += kWarpSize) sum += to_f32(x[c]);
  const float m = warp_sum(sum) / C;
  float sq = 0.0f;
  for (int c = lane; c < C; c += kWarpSize) {
    const float d = to_f32(x[c]) - m;
    sq += d * d;
  }
  const float s = rsqrtf(warp_sum(sq) / C + eps);
  for (int c = lane; c < C; c += kWarpSize) {
    const float b = bias ? to_f32(bias[c]) : 0.0f;
    y[c] = Elem<T>::from_f32((to_f32(x[c]) - m) * s * to_f32(weight[c]) + b);
  }
  if (lane == 0) {
    if (mean) mean[row] = m;
    if (rstd) rstd[row] = s;
  }
}

// din may alias dout: every lane reads dout[c] for its own columns in the first pass and
// overwrites exactly those columns in the second.
template <typename T>
__global__ void layernorm_backward_input_kernel(T* din, const T* dout, const T* in, const T* weight,
                                                const float* mean, const float* rstd, int64_t rows,
                                                int C) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (row >= rows) return;
  const T* x = in + row * C;
  const T* dy = dout + row * C;
  T* dx = din + row * C;
  const float m = mean[row], s = rstd[row];

  float g_sum = 0.0f, gx_sum = 0.0f;
  for (int c = lane; c < C; c += kWarpSize) {
    const float g = to_f32(weight[c]) * to_f32(dy[c]);
    g_sum += g;
    gx_sum += g * (to_f32(x[c]) - m) * s;
  }
  const float g_mean = warp_sum(g_sum) / C;
  const float gx_mean = warp_sum(gx_sum) / C;
  for (int c = lane; c < C; c += kWarpSize) {
    const float g = to_f32(weight[c]) * to_f32(dy[c]);
    const float xhat = (to_f32(x[c]) - m) * s;
    dx[c] = Elem<T>::from_f32(s * (g - g_mean - xhat * gx_mean));
  }
}

// Thread = column; the grid's y dimension splits the rows into chunks whose partial sums are
// added with one atomic per column and chunk (coalesced reads, few atomics).
template <typename T>
__global__ void layernorm_backward_params_kernel(float* dweight, float* dbias, const T* dout,
                                                 const T* in, const float* mean, const float* rstd,
                                                 int64_t rows, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float dw = 0.0f, db = 0.0f;
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const float dy = to_f32(dout[r * C + c]);
    dw += dy * (to_f32(in[r * C + c]) - mean[r]) * rstd[r];
    db += dy;
  }
  if (dweight) atomicAdd(dweight + c, dw);
  if (dbias) atomicAdd(dbias + c, db);
}

void check_stats(const Tensor& t, int64_t rows, const char* what) {
  check_dtype(t, DType::f32, what);
  TS_ASSERT(t.numel() == rows, std::string(what) + " " + t.shape.str() +
                                   " must have one entry "
                                   "per row (" +
                                   std::to_string(rows) + ")");
}

}  // namespace

void layernorm_forward(Device& dev, Tensor out, Tensor mean, Tensor rstd, Tensor in, Tensor weight,
                       Tensor bias, float eps) {
  CudaState& s = state_of(dev);
  const int64_t rows = in.rows(), C = in.cols();
  TS_ASSERT(out.numel() == in.numel() && out.dtype == in.dtype,
            "layernorm_forward: out and in differ in size or dtype");
  TS_ASSERT(weight.numel() == C && weight.dtype == in.dtype,
            "layernorm_forward: weight must be (C) in the activations' dtype");
  TS_ASSERT(bias.empty() || (bias.numel() == C && bias.dtype == in.dtype),
            "layernorm_forward: bias must be (C) in the activations' dtype");
  if (!mean.empty()) check_stats(mean, rows, "layernorm_forward mean");
  if (!rstd.empty()) check_stats(rstd, rows, "layernorm_forward rstd");
  TS_ASSERT(C <= 0x7fffffff, "layernorm_forward: row too long");
  if (rows == 0) return;
  const unsigned grid = static_cast<unsigned>(ceil_div(rows, kRowsPerBlock));
  dispatch_float(in.dtype, "layernorm_forward", false, [&](auto tag) {
    using T = typename decltype(tag)::type;
    layernorm_forward_kernel<T><<<grid, kBlock, 0, s.stream>>>(
        out.ptr<T>(), mean.ptr<float>(), rstd.ptr<float>(), in.ptr<T>(), weight.ptr<T>(),
        bias.ptr<T>(), rows, static_cast<int>(C), eps);
  });
  check_launch();
}

void layernorm_backward(Device& dev, Tensor din, Tensor dweight, Tensor dbias, Tensor dout,
                        Tensor in, Tensor weight, Tensor mean, Tensor rstd) {
  CudaState& s = state_of(dev);
  const int64_t rows = in.rows(), C = in.cols();
  TS_ASSERT(dout.numel() == in.numel() && dout.dtype == in.dtype,
            "layernorm_backward: dout and in differ in size or dtype");
  TS_ASSERT(weight.numel() == C && weight.dtype == in.dtype,
            "layernorm_backward: weight must be (C) in the activations' dtype");
  check_stats(mean, rows, "layernorm_backward mean");
  check_stats(rstd, rows, "layernorm_backward rstd");
  if (!dweight.empty()) {
    check_dtype(dweight, DType::f32, "layernorm_backward dweight");
    TS_ASSERT(dweight.numel() == C, "layernorm_backward: dweight length != C");
  }
  if (!dbias.empty()) {
    check_dtype(dbias, DType::f32, "layernorm_backward dbias");
    TS_ASSERT(dbias.numel() == C, "layernorm_backward: dbias length != C");
  }
  if (!din.empty())
    TS_ASSERT(din.numel() == in.numel() && din.dtype == in.dtype,
              "layernorm_backward: din and in differ in size or dtype");
  TS_ASSERT(C <= 0x7fffffff, "layernorm_backward: row too long");
  if (rows == 0) return;

  dispatch_float(in.dtype, "layernorm_backward", false, [&](auto tag) {
    using T = typename decltype(tag)::type;
    // Parameter gradients first: they read dout, which din may overwrite.
    if (!dweight.empty() || !dbias.empty()) {
      constexpr int kColBlock = 256;
      const int64_t col_blocks = ceil_div(C, kColBlock);
      const int64_t target = int64_t{s.props.multiProcessorCount} * 8;
      const int64_t row_blocks =
          std::clamp<int64_t>(ceil_div(target, col_blocks), 1, std::min<int64_t>(rows, 65535));
      const dim3 grid(static_cast<unsigned>(col_blocks), static_cast<unsigned>(row_blocks));
      layernorm_backward_params_kernel<T><<<grid, kColBlock, 0, s.stream>>>(
          dweight.ptr<float>(), dbias.ptr<float>(), dout.ptr<T>(), in.ptr<T>(), mean.ptr<float>(),
          rstd.ptr<float>(), rows, static_cast<int>(C));
      check_launch();
    }
    if (!din.empty()) {
      const unsigned grid = static_cast<unsigned>(ceil_div(rows, kRowsPerBlock));
      layernorm_backward_input_kernel<T><<<grid, kBlock, 0, s.stream>>>(
          din.ptr<T>(), dout.ptr<T>(), in.ptr<T>(), weight.ptr<T>(), mean.ptr<float>(),
          rstd.ptr<float>(), rows, static_cast<int>(C));
      check_launch();
    }
  });
}

}  // namespace tessera::cuda
