// The CUDA Device hooks: state lifetime, memory, copies, and the peak-FLOP/s table for MFU.
#include <cstring>

#include "runtime/cuda/backend.h"
#include "runtime/cuda/state.cuh"

namespace tessera {

CudaState::CudaState(int device_ordinal) : ordinal(device_ordinal) {
  TS_CHECK_CUDA(cudaSetDevice(ordinal));
  TS_CHECK_CUDA(cudaGetDeviceProperties(&props, ordinal));
  // A blocking stream: it stays ordered with the legacy default stream, so a library that
  // enqueues there without being told our stream cannot race with us.
  TS_CHECK_CUDA(cudaStreamCreate(&stream));
  TS_CHECK_CUBLAS(cublasLtCreate(&cublaslt));
  TS_CHECK_CUDA(cudaMalloc(&cublaslt_workspace, kCublasLtWorkspaceBytes));
  TS_CHECK_CUDNN(cudnnCreate(&cudnn));
  TS_CHECK_CUDNN(cudnnSetStream(cudnn, stream));
}

CudaState::~CudaState() {
  // Teardown ignores errors on purpose: after a device fault every call fails, and aborting
  // from a destructor would hide the error that caused the fault.
  if (stream) (void)cudaStreamSynchronize(stream);
  if (attention_graphs) cuda::attention_cache_destroy(attention_graphs);  // before the handle
  if (cudnn_workspace) (void)cudaFree(cudnn_workspace);
  if (cudnn) (void)cudnnDestroy(cudnn);
  if (cublaslt_workspace) (void)cudaFree(cublaslt_workspace);
  if (cublaslt) (void)cublasLtDestroy(cublaslt);
  if (stream) (void)cudaStreamDestroy(stream);
}

void CudaState::cudnn_workspace_reserve(size_t bytes) {
  if (bytes <= cudnn_workspace_bytes) return;
  // Queued work may still read the old buffer.
  TS_CHECK_CUDA(cudaStreamSynchronize(stream));
  if (cudnn_workspace) TS_CHECK_CUDA(cudaFree(cudnn_workspace));
  cudnn_workspace = nullptr;
  cudnn_workspace_bytes = 0;
  TS_CHECK_CUDA(cudaMalloc(&cudnn_workspace, bytes));
  cudnn_workspace_bytes = bytes;
}

namespace cuda {

int device_count() {
  int n = 0;
  // No driver, no GPU, or a driver too old for this runtime all mean "no usable GPU" here; the
  // error is cleared so it does not surface later as a stale cudaGetLastError().
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

CudaState* state_create(int ordinal) {
  return new CudaState(ordinal);
}

void state_destroy(CudaState* s) {
  delete s;
}

void* allocate(CudaState* s, size_t bytes) {
  TS_CHECK_CUDA(cudaSetDevice(s->ordinal));
  void* p = nullptr;
  const cudaError_t rc = cudaMalloc(&p, bytes);
  if (rc == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    throw UserError("out of GPU memory allocating " + std::to_string(bytes) + " bytes on " +
                    s->props.name + " (reduce train.micro_batch or model size)");
  }
  TS_CHECK_CUDA(rc);
  // Zeroed like CPU allocations, so arenas start clean on both backends.
  TS_CHECK_CUDA(cudaMemsetAsync(p, 0, bytes, s->stream));
  TS_CHECK_CUDA(cudaStreamSynchronize(s->stream));
  return p;
}

void release(CudaState* s, void* p) {
  // cudaFree waits for the device, so no kernel still using p can race with reuse.
  (void)s;
  TS_CHECK_CUDA(cudaFree(p));
}

void copy_to_host(CudaState* s, void* dst, const Tensor& src) {
  check_on_cuda(src, "copy_to_host source");
  TS_CHECK_CUDA(cudaMemcpyAsync(dst, src.data, src.bytes(), cudaMemcpyDeviceToHost, s->stream));
  TS_CHECK_CUDA(cudaStreamSynchronize(s->stream));  // the caller reads dst next
}

void copy_from_host(CudaState* s, const Tensor& dst, const void* src) {
  check_on_cuda(dst, "copy_from_host destination");
  TS_CHECK_CUDA(cudaMemcpyAsync(dst.data, src, dst.bytes(), cudaMemcpyHostToDevice, s->stream));
  TS_CHECK_CUDA(cudaStreamSynchronize(s->stream));  // the caller may free or reuse src next
}

void synchronize(CudaState* s) {
  TS_CHECK_CUDA(cudaStreamSynchronize(s->stream));
}

const char* device_name(CudaState* s) {
  return s->props.name;
}

// Vendor datasheet figures for dense bf16 tensor-core throughput (no 2:4 sparsity), FLOP/s.
// Unknown parts fall back on their architecture's flagship, so MFU there is a lower bound.
double peak_flops(CudaState* s) {
  const char* name = s->props.name;
  auto has = [name](const char* part) { return std::strstr(name, part) != nullptr; };
  if (has("H200")) return 989e12;
  if (has("H100") && has("PCIe")) return 756e12;
  if (has("H100") && has("NVL")) return 835e12;
  if (has("H100")) return 989e12;  // SXM ("NVIDIA H100 80GB HBM3")
  if (has("A100")) return 312e12;
  if (s->props.major >= 9) return 989e12;
  return 312e12;
}

}  // namespace cuda
}  // namespace tessera
