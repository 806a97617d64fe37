// Vocabulary-parallel cross-entropy (runtime/ops.h): three passes over this rank's slice of the
// logits (N, Vl), one block per row, around the tensor-parallel all-reduces of rowmax (max) and
// stats (sum). Unlike the fused kernel in loss.cu the row maximum is not found online: it must
// be global before the sums, and the all-reduce in between is what makes it so.
#include <cfloat>
#include <cmath>

#include "runtime/cuda/backend.h"
#include "runtime/cuda/state.cuh"

namespace tessera::cuda {
namespace {

constexpr int kBlock = 512;

__device__ __forceinline__ float warp_max(float v) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Maximum over the block, returned to every thread; the identity is -FLT_MAX, the CPU twin's
// numeric_limits<float>::lowest(). Ends with a barrier so `shared` can be reused.
__device__ __forceinline__ float block_max(float v, float* shared /* [32] */) {
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int warps = blockDim.x / kWarpSize;
  v = warp_max(v);
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  float total = lane < warps ? shared[lane] : -FLT_MAX;
  total = warp_max(total);
  __syncthreads();
  return total;
}

// rowmax[row] = max over the first `valid` columns (-FLT_MAX when there are none).
template <typename T>
__global__ void xent_vocab_max_kernel(float* rowmax, const T* logits, int64_t Vl, int64_t valid) {
  __shared__ float shared[32];
  const T* z = logits + static_cast<int64_t>(blockIdx.x) * Vl;
  float m = -FLT_MAX;
  for (int64_t c = threadIdx.x; c < valid; c += blockDim.x) m = fmaxf(m, to_f32(z[c]));
  m = block_max(m, shared);
  if (threadIdx.x == 0) rowmax[blockIdx.x] = m;
}

// stats[row] = (sum over valid columns of exp(z - rowmax), z[target] if this slice owns it).
template <typename T>
__global__ void xent_vocab_sums_kernel(float* stats, const T* logits, const float* rowmax,
                                       const int32_t* targets, int64_t Vl, int64_t vocab_start,
                                       int64_t valid) {
  __shared__ float shared[32];
  const int64_t row = blockIdx.x;
  const T* z = logits + row * Vl;
  const float m = rowmax[row];
  float sum = 0.0f;
  for (int64_t c = threadIdx.x; c < valid; c += blockDim.x) sum += expf(to_f32(z[c]) - m);
  sum = block_sum(sum, shared);
  if (threadIdx.x == 0) {
    const int64_t y = static_cast<int64_t>(targets[row]) - vocab_start;
    stats[2 * row] = sum;
    stats[2 * row + 1] = (y >= 0 && y < valid) ? to_f32(z[y]) : 0.0f;
  }
}

// losses[row] = log(stats0) + rowmax - stats1; with kBackward the row becomes
// (softmax - onehot) * dloss, in the CPU twin's order of operations. Each thread reads and
// writes only its own columns, and the loss needs only the stats, so no barrier is needed.
template <typename T, bool kBackward>
__global__ void xent_vocab_finish_kernel(float* losses, T* logits, const float* rowmax,
                                         const float* stats, const int32_t* targets, int64_t Vl,
                                         int64_t vocab_start, int64_t valid, float dloss) {
  const int64_t row = blockIdx.x;
  T* z = logits + row * Vl;
  const int32_t target = targets[row];
  const float m = rowmax[row], sum = stats[2 * row];
  if (threadIdx.x == 0) losses[row] = target < 0 ? 0.0f : m + logf(sum) - stats[2 * row + 1];
  if (!kBackward) return;
  const int64_t y = static_cast<int64_t>(target) - vocab_start;
  const float inv = 1.0f / sum;
  for (int64_t c = threadIdx.x; c < Vl; c += blockDim.x) {
    float d = 0.0f;
    if (target >= 0 && c < valid) {
      d = expf(to_f32(z[c]) - m) * inv * dloss;
      if (c == y) d -= dloss;
    }
    z[c] = Elem<T>::from_f32(d);
  }
}

// Shapes and dtypes shared by the three passes; returns the number of rows.
int64_t check_xent_vocab(const Tensor& logits, const Tensor& targets, int64_t valid,
                         const std::string& op) {
  const int64_t N = logits.rows(), Vl = logits.cols();
  TS_ASSERT(valid >= 0 && valid <= Vl, op + ": valid=" + std::to_string(valid) +
                                           " must be in [0, Vl=" + std::to_string(Vl) + "]");
  TS_ASSERT(N <= 0x7fffffff, op + ": too many rows for one grid");
  if (!targets.empty()) {
    check_dtype(targets, DType::i32, (op + " targets").c_str());
    TS_ASSERT(targets.numel() == N,
              op + ": targets need one entry per row of logits " + logits.shape.str());
  }
  return N;
}

}  // namespace

void xent_vocab_max(Device& dev, Tensor rowmax, Tensor logits, int64_t valid) {
  CudaState& s = state_of(dev);
  const int64_t N = check_xent_vocab(logits, Tensor{}, valid, "xent_vocab_max");
  check_dtype(rowmax, DType::f32, "xent_vocab_max rowmax");
  TS_ASSERT(rowmax.numel() == N, "xent_vocab_max: rowmax " + rowmax.shape.str() +
                                     " needs one entry per row of logits " + logits.shape.str());
  if (N == 0) return;
  dispatch_float(logits.dtype, "xent_vocab_max", false, [&](auto tag) {
    using T = typename decltype(tag)::type;
    xent_vocab_max_kernel<T><<<static_cast<unsigned>(N), kBlock, 0, s.stream>>>(
        rowmax.ptr<float>(), logits.ptr<T>(), logits.cols(), valid);
  });
  check_launch();
}

void xent_vocab_sums(Device& dev, Tensor stats, Tensor logits, Tensor rowmax, Tensor targets,
                     int64_t vocab_start, int64_t valid) {
  CudaState& s = state_of(dev);
  const int64_t N = check_xent_vocab(logits, targets, valid, "xent_vocab_sums");
  check_dtype(stats, DType::f32, "xent_vocab_sums stats");
  check_dtype(rowmax, DType::f32, "xent_vocab_sums rowmax");
  TS_ASSERT(stats.numel() == 2 * N && rowmax.numel() == N,
            "xent_vocab_sums: stats " + stats.shape.str() + " must be (N, 2) and rowmax " +
                rowmax.shape.str() + " (N) for logits " + logits.shape.str());
  if (N == 0) return;
  dispatch_float(logits.dtype, "xent_vocab_sums", false, [&](auto tag) {
    using T = typename decltype(tag)::type;
    xent_vocab_sums_kernel<T><<<static_cast<unsigned>(N), kBlock, 0, s.stream>>>(
        stats.ptr<float>(), logits.ptr<T>(), rowmax.ptr<float>(), targets.ptr<int32_t>(),
        logits.cols(), vocab_start, valid);
  });
  check_launch();
}

void xent_vocab_finish(Device& dev, Tensor losses, Tensor logits, Tensor rowmax, Tensor stats,
                       Tensor targets, int64_t vocab_start, int64_t valid, float dloss) {
  CudaState& s = state_of(dev);
  const int64_t N = check_xent_vocab(logits, targets, valid, "xent_vocab_finish");
  check_dtype(losses, DType::f32, "xent_vocab_finish losses");
  check_dtype(stats, DType::f32, "xent_vocab_finish stats");
  check_dtype(rowmax, DType::f32, "xent_vocab_finish rowmax");
  TS_ASSERT(losses.numel() == N && stats.numel() == 2 * N && rowmax.numel() == N,
            "xent_vocab_finish: losses " + losses.shape.str() + ", rowmax " +
                rowmax.shape.str() + " and stats " + stats.shape.str() +
                " do not match logits " + logits.shape.str());
  if (N == 0) return;
  dispatch_float(logits.dtype, "xent_vocab_finish", false, [&](auto tag) {
    using T = typename decltype(tag)::type;
    auto launch = [&](auto kernel) {
      kernel<<<static_cast<unsigned>(N), kBlock, 0, s.stream>>>(
          losses.ptr<float>(), logits.ptr<T>(), rowmax.ptr<float>(), stats.ptr<float>(),
          targets.ptr<int32_t>(), logits.cols(), vocab_start, valid, dloss);
    };
    // dloss == 0 is evaluation: logits untouched, as on the CPU.
    if (dloss != 0.0f)
      launch(xent_vocab_finish_kernel<T, true>);
    else
      launch(xent_vocab_finish_kernel<T, false>);
  });
  check_launch();
}

}  // namespace tessera::cuda
