// CudaState: everything one process needs to run ops on one GPU, and the host/device helpers
// the launchers in runtime/cuda/*.cu share. Included only by .cu files; everything above
// runtime/ sees CudaState as an opaque pointer (runtime/device.h).
//
// Ownership: CudaState owns its stream, the cuBLASLt and cuDNN handles, their workspaces and the
// cache of built cuDNN attention graphs; it is created by state_create and released by
// state_destroy (its destructor). All launchers enqueue on `stream` from the thread that owns
// the Device; none of them synchronises with the host.
#pragma once
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "runtime/device.h"
#include "runtime/error.h"
#include "runtime/tensor.h"

namespace tessera {

namespace cuda {
// Built cuDNN attention graphs keyed by shape; defined in attention.cu so that only that file
// pays for the cudnn-frontend headers.
struct AttentionGraphCache;
void attention_cache_destroy(AttentionGraphCache* cache);
}  // namespace cuda

struct CudaState {
  // 32 MiB: what cuBLASLt's heuristics ask for on Hopper for large bf16 GEMMs.
  static constexpr size_t kCublasLtWorkspaceBytes = size_t{32} << 20;

  int ordinal = 0;
  cudaDeviceProp props{};
  cudaStream_t stream = nullptr;
  cublasLtHandle_t cublaslt = nullptr;
  void* cublaslt_workspace = nullptr;  // kCublasLtWorkspaceBytes
  cudnnHandle_t cudnn = nullptr;
  // Grown (never shrunk) when an attention graph is first built, i.e. before step 0 completes;
  // steady-state steps never allocate.
  void* cudnn_workspace = nullptr;
  size_t cudnn_workspace_bytes = 0;
  cuda::AttentionGraphCache* attention_graphs = nullptr;

  explicit CudaState(int device_ordinal);
  ~CudaState();
  CudaState(const CudaState&) = delete;
  CudaState& operator=(const CudaState&) = delete;

  // Makes cudnn_workspace at least `bytes` long. Synchronises the stream when it grows.
  void cudnn_workspace_reserve(size_t bytes);
};

namespace cuda {

inline CudaState& state_of(Device& dev) {
  TS_ASSERT(dev.kind() == DeviceKind::cuda && dev.cuda() != nullptr,
            "CUDA op called with a device that has no CUDA state");
  return *dev.cuda();
}

inline void check_dtype(const Tensor& t, DType expected, const char* what) {
  TS_ASSERT(t.dtype == expected, std::string(what) + " must be " +
                                     std::string(dtype_name(expected)) + " on CUDA, got " +
                                     std::string(dtype_name(t.dtype)));
}

inline void check_on_cuda(const Tensor& t, const char* what) {
  TS_ASSERT(t.device == DeviceKind::cuda, std::string(what) + " is not a CUDA tensor");
}

// Launch errors (bad configuration) surface here; faults inside kernels surface at the next
// synchronising call.
inline void check_launch() {
  TS_CHECK_CUDA(cudaGetLastError());
}

constexpr int kWarpSize = 32;

inline int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Blocks for a grid-stride loop over n elements: enough to fill every SM several times over,
// never more than there is work for.
inline unsigned grid_size(const CudaState& s, int64_t n, int block) {
  const int64_t fill = int64_t{s.props.multiProcessorCount} * 16;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(ceil_div(n, block), fill)));
}

// Element type <-> fp32/fp64 arithmetic. All math in the kernels is fp32 (fp64 only in
// convert), whatever the storage type.
__host__ __device__ __forceinline__ float to_f32(float x) {
  return x;
}
__host__ __device__ __forceinline__ float to_f32(double x) {
  return static_cast<float>(x);
}
__host__ __device__ __forceinline__ float to_f32(__nv_bfloat16 x) {
  return __bfloat162float(x);
}
__host__ __device__ __forceinline__ double to_f64(float x) {
  return x;
}
__host__ __device__ __forceinline__ double to_f64(double x) {
  return x;
}
__host__ __device__ __forceinline__ double to_f64(__nv_bfloat16 x) {
  return static_cast<double>(__bfloat162float(x));
}

template <typename T>
struct Elem;
template <>
struct Elem<float> {
  __host__ __device__ static float from_f32(float x) { return x; }
  __host__ __device__ static float from_f64(double x) { return static_cast<float>(x); }
};
template <>
struct Elem<double> {
  __host__ __device__ static double from_f32(float x) { return x; }
  __host__ __device__ static double from_f64(double x) { return x; }
};
// Round to nearest even, as the CPU twin's conversion does.
template <>
struct Elem<__nv_bfloat16> {
  __host__ __device__ static __nv_bfloat16 from_f32(float x) { return __float2bfloat16_rn(x); }
  __host__ __device__ static __nv_bfloat16 from_f64(double x) { return __double2bfloat16(x); }
};

template <typename T>
struct TypeTag {
  using type = T;
};

// Calls f(TypeTag<T>{}) for the storage type of a floating-point tensor; `allow_f64` is false
// for ops that only exist in f32/bf16 on the GPU.
template <typename F>
void dispatch_float(DType dt, const char* what, bool allow_f64, F&& f) {
  switch (dt) {
    case DType::f32:
      f(TypeTag<float>{});
      return;
    case DType::bf16:
      f(TypeTag<__nv_bfloat16>{});
      return;
    case DType::f64:
      if (allow_f64) {
        f(TypeTag<double>{});
        return;
      }
      break;
    case DType::i32:
      break;
  }
  TS_ASSERT(false,
            std::string(what) + ": unsupported dtype " + std::string(dtype_name(dt)) + " on CUDA");
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over the block, returned to every thread. blockDim.x must be a multiple of 32 and at
// most 1024. Ends with a barrier so `shared` can be reused right away.
__device__ __forceinline__ float block_sum(float v, float* shared /* [32] */) {
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int warps = blockDim.x / kWarpSize;
  v = warp_sum(v);
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  float total = lane < warps ? shared[lane] : 0.0f;
  total = warp_sum(total);
  __syncthreads();
  return total;
}

// out[c] += sum over rows of x[r, c] (x row-major (rows, cols), bf16 or f32; out f32).
// Used for bias gradients and the position-embedding gradient. Implemented in elementwise.cu.
void column_sum_accumulate(CudaState& s, float* out, const void* x, DType x_dtype, int64_t rows,
                           int64_t cols);

}  // namespace cuda
}  // namespace tessera
