// Element-wise ops (GELU, add, dropout, scale, convert, fill) and the column-sum reduction the
// bias gradients share. Grid-stride loops over int64 indices, fp32 math, any storage type the
// op allows (bf16 activations, f32 where a caller keeps f32 buffers).
#include "runtime/cuda/backend.h"
#include "runtime/cuda/state.cuh"
#include "runtime/philox.h"

namespace tessera::cuda {
namespace {

constexpr int kBlock = 256;

// GPT-2's tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
constexpr float kGeluScale = 0.7978845608028654f;  // sqrt(2/pi)
constexpr float kGeluCubic = 0.044715f;

__device__ __forceinline__ float gelu(float x) {
  const float u = kGeluScale * (x + kGeluCubic * x * x * x);
  return 0.5f * x * (1.0f + tanhf(u));
}

// d/dx of gelu above: 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx, t = tanh(u).
__device__ __forceinline__ float gelu_grad(float x) {
  const float u = kGeluScale * (x + kGeluCubic * x * x * x);
  const float t = tanhf(u);
  const float du = kGeluScale * (1.0f + 3.0f * kGeluCubic * x * x);
  return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
}

#define TS_GRID_STRIDE(i, n)                                                             \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

template <typename T>
__global__ void gelu_forward_kernel(T* out, const T* in, int64_t n) {
  TS_GRID_STRIDE(i, n) {
    out[i] = Elem<T>::from_f32(gelu(to_f32(in[i])));
  }
}

// din may alias dout: each element is read before it is written, by the same thread.
template <typename T>
__global__ void gelu_backward_kernel(T* din, const T* in, const T* dout, int64_t n) {
  TS_GRID_STRIDE(i, n) {
    din[i] = Elem<T>::from_f32(gelu_grad(to_f32(in[i])) * to_f32(dout[i]));
  }
}

template <typename T>
__global__ void add_kernel(T* out, const T* a, const T* b, int64_t n) {
  TS_GRID_STRIDE(i, n) {
    out[i] = Elem<T>::from_f32(to_f32(a[i]) + to_f32(b[i]));
  }
}

template <typename A, typename X>
__global__ void add_inplace_kernel(A* acc, const X* x, int64_t n) {
  TS_GRID_STRIDE(i, n) {
    acc[i] = Elem<A>::from_f32(to_f32(acc[i]) + to_f32(x[i]));
  }
}

// Same rule as the CPU twin, bit for bit: element i is kept iff
// uniform(seed, stream, offset + i) >= p.
template <typename T>
__global__ void dropout_kernel(T* out, const T* in, float p, float scale, uint64_t seed,
                               uint64_t stream, uint64_t offset, int64_t n) {
  TS_GRID_STRIDE(i, n) {
    const bool keep = philox::uniform(seed, stream, offset + static_cast<uint64_t>(i)) >= p;
    out[i] = Elem<T>::from_f32(keep ? to_f32(in[i]) * scale : 0.0f);
  }
}

template <typename T>
__global__ void scale_kernel(T* x, float s, int64_t n) {
  TS_GRID_STRIDE(i, n) {
    x[i] = Elem<T>::from_f32(to_f32(x[i]) * s);
  }
}

// Through fp64 so f64 <-> f32 is exact where it can be and bf16 rounding happens once.
template <typename D, typename S>
__global__ void convert_kernel(D* dst, const S* src, int64_t n) {
  TS_GRID_STRIDE(i, n) {
    dst[i] = Elem<D>::from_f64(to_f64(src[i]));
  }
}

// Thread = column, blocks tile (columns, row chunks): for a fixed row, neighbouring threads
// read neighbouring addresses; each thread adds its chunk's partial with one atomic.
template <typename T>
__global__ void column_sum_kernel(float* out, const T* x, int64_t rows, int64_t cols) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  float sum = 0.0f;
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) sum += to_f32(x[r * cols + c]);
  atomicAdd(out + c, sum);
}

void check_same(const Tensor& a, const Tensor& b, const char* op) {
  TS_ASSERT(a.numel() == b.numel(), std::string(op) + ": shapes " + a.shape.str() + " and " +
                                        b.shape.str() + " differ in size");
  TS_ASSERT(a.dtype == b.dtype, std::string(op) + ": dtypes " + std::string(dtype_name(a.dtype)) +
                                    " and " + std::string(dtype_name(b.dtype)) + " differ");
}

void dropout(Device& dev, Tensor out, Tensor in, float p, uint64_t seed, uint64_t stream,
             uint64_t offset, const char* op) {
  CudaState& s = state_of(dev);
  check_same(out, in, op);
  const int64_t n = out.numel();
  if (n == 0) return;
  if (p <= 0.0f) {  // identity, as the CPU twin (a negative p would otherwise scale by < 1)
    if (out.data != in.data)
      TS_CHECK_CUDA(
          cudaMemcpyAsync(out.data, in.data, out.bytes(), cudaMemcpyDeviceToDevice, s.stream));
    return;
  }
  // Computed once on the host, as the CPU twin does, so kept values match exactly. p >= 1
  // keeps nothing (uniform < 1), so the infinite scale is never used: all zeros, as on the CPU.
  const float scale = 1.0f / (1.0f - p);
  dispatch_float(out.dtype, op, false, [&](auto tag) {
    using T = typename decltype(tag)::type;
    dropout_kernel<T><<<grid_size(s, n, kBlock), kBlock, 0, s.stream>>>(
        out.ptr<T>(), in.ptr<T>(), p, scale, seed, stream, offset, n);
  });
  check_launch();
}

}  // namespace

void column_sum_accumulate(CudaState& s, float* out, const void* x, DType x_dtype, int64_t rows,
                           int64_t cols) {
  if (rows == 0 || cols == 0) return;
  const int64_t col_blocks = ceil_div(cols, kBlock);
  // Enough row chunks to put ~8 blocks on every SM; more only adds atomics.
  const int64_t target = int64_t{s.props.multiProcessorCount} * 8;
  const int64_t row_blocks =
      std::clamp<int64_t>(ceil_div(target, col_blocks), 1, std::min<int64_t>(rows, 65535));
  TS_ASSERT(col_blocks <= 0x7fffffff, "column_sum: too many columns");
  const dim3 grid(static_cast<unsigned>(col_blocks), static_cast<unsigned>(row_blocks));
  dispatch_float(x_dtype, "column_sum", false, [&](auto tag) {
    using T = typename decltype(tag)::type;
    column_sum_kernel<T><<<grid, kBlock, 0, s.stream>>>(out, static_cast<const T*>(x), rows, cols);
  });
  check_launch();
}

void gelu_forward(Device& dev, Tensor out, Tensor in) {
  CudaState& s = state_of(dev);
  check_same(out, in, "gelu_forward");
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_float(out.dtype, "gelu_forward", false, [&](auto tag) {
    using T = typename decltype(tag)::type;
    gelu_forward_kernel<T>
        <<<grid_size(s, n, kBlock), kBlock, 0, s.stream>>>(out.ptr<T>(), in.ptr<T>(), n);
  });
  check_launch();
}

void gelu_backward(Device& dev, Tensor din, Tensor in, Tensor dout) {
  CudaState& s = state_of(dev);
  check_same(din, in, "gelu_backward");
  check_same(din, dout, "gelu_backward");
  const int64_t n = din.numel();
  if (n == 0) return;
  dispatch_float(din.dtype, "gelu_backward", false, [&](auto tag) {
    using T = typename decltype(tag)::type;
    gelu_backward_kernel<T><<<grid_size(s, n, kBlock), kBlock, 0, s.stream>>>(
        din.ptr<T>(), in.ptr<T>(), dout.ptr<T>(), n);
  });
  check_launch();
}

void add(Device& dev, Tensor out, Tensor a, Tensor b) {
  CudaState& s = state_of(dev);
  check_same(out, a, "add");
  check_same(out, b, "add");
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_float(out.dtype, "add", false, [&](auto tag) {
    using T = typename decltype(tag)::type;
    add_kernel<T>
        <<<grid_size(s, n, kBlock), kBlock, 0, s.stream>>>(out.ptr<T>(), a.ptr<T>(), b.ptr<T>(), n);
  });
  check_launch();
}

// acc and x may differ in dtype (an f32 accumulator fed bf16 values, or the reverse).
void add_inplace(Device& dev, Tensor acc, Tensor x) {
  CudaState& s = state_of(dev);
  TS_ASSERT(acc.numel() == x.numel(),
            "add_inplace: shapes " + acc.shape.str() + " and " + x.shape.str() + " differ in size");
  const int64_t n = acc.numel();
  if (n == 0) return;
  dispatch_float(acc.dtype, "add_inplace acc", false, [&](auto acc_tag) {
    using A = typename decltype(acc_tag)::type;
    dispatch_float(x.dtype, "add_inplace x", false, [&](auto x_tag) {
      using X = typename decltype(x_tag)::type;
      add_inplace_kernel<A, X>
          <<<grid_size(s, n, kBlock), kBlock, 0, s.stream>>>(acc.ptr<A>(), x.ptr<X>(), n);
    });
  });
  check_launch();
}

void dropout_forward(Device& dev, Tensor out, Tensor in, float p, uint64_t seed, uint64_t stream,
                     uint64_t offset) {
  dropout(dev, out, in, p, seed, stream, offset, "dropout_forward");
}

// The mask is regenerated from (seed, stream, offset), so backward is the same masked scaling.
void dropout_backward(Device& dev, Tensor din, Tensor dout, float p, uint64_t seed,
                      uint64_t stream, uint64_t offset) {
  dropout(dev, din, dout, p, seed, stream, offset, "dropout_backward");
}

void scale_inplace(Device& dev, Tensor x, float scale) {
  CudaState& s = state_of(dev);
  const int64_t n = x.numel();
  if (n == 0) return;
  dispatch_float(x.dtype, "scale_inplace", true, [&](auto tag) {
    using T = typename decltype(tag)::type;
    scale_kernel<T><<<grid_size(s, n, kBlock), kBlock, 0, s.stream>>>(x.ptr<T>(), scale, n);
  });
  check_launch();
}

void convert(Device& dev, Tensor dst, Tensor src) {
  CudaState& s = state_of(dev);
  TS_ASSERT(dst.numel() == src.numel(), "convert: element counts differ");
  const int64_t n = dst.numel();
  if (n == 0) return;
  if (dst.dtype == src.dtype) {
    if (dst.data != src.data)
      TS_CHECK_CUDA(
          cudaMemcpyAsync(dst.data, src.data, dst.bytes(), cudaMemcpyDeviceToDevice, s.stream));
    return;
  }
  dispatch_float(dst.dtype, "convert dst", true, [&](auto dst_tag) {
    using D = typename decltype(dst_tag)::type;
    dispatch_float(src.dtype, "convert src", true, [&](auto src_tag) {
      using S = typename decltype(src_tag)::type;
      convert_kernel<D, S>
          <<<grid_size(s, n, kBlock), kBlock, 0, s.stream>>>(dst.ptr<D>(), src.ptr<S>(), n);
    });
  });
  check_launch();
}

void fill_zero(Device& dev, Tensor t) {
  if (t.empty() || t.numel() == 0) return;
  TS_CHECK_CUDA(cudaMemsetAsync(t.data, 0, t.bytes(), state_of(dev).stream));
}

}  // namespace tessera::cuda
