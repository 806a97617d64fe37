// Device: where tensors live and ops run. One per process. The CPU device is trivial; the CUDA
// device owns a stream and the cuBLASLt / cuDNN handles (RAII, non-copyable). Ops take the
// device explicitly; above runtime/ nothing branches on its kind.
#pragma once
#include <cstddef>
#include <memory>
#include <vector>

#include "runtime/dtype.h"
#include "runtime/tensor.h"

namespace tessera {

struct CudaState;  // defined in runtime/cuda/; opaque to everything else

class Device {
 public:
  // Throws UserError when the CUDA backend is not built or no GPU is visible.
  static std::unique_ptr<Device> create(DeviceKind kind, int ordinal = 0);
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  DeviceKind kind() const { return kind_; }
  // Raw allocation; used by arenas only, never inside a step.
  void* allocate(size_t bytes);
  void release(void* ptr);
  void copy_to_host(void* dst, const Tensor& src);
  void copy_from_host(const Tensor& dst, const void* src);
  // Waits for all queued work (a no-op on the CPU).
  void synchronize();
  // Peak dense bf16 (CUDA) or measured fp32 GEMM (CPU) FLOP/s; used for MFU.
  double peak_flops();
  const char* name() const;

  CudaState* cuda() const { return cuda_; }

 private:
  explicit Device(DeviceKind kind);
  DeviceKind kind_;
  CudaState* cuda_ = nullptr;  // owned; destroyed in ~Device
  double peak_flops_ = 0;
};

// Copies any tensor to the host as doubles (for losses, logits, tests).
std::vector<double> tensor_to_host_f64(Device& dev, const Tensor& t);

// True when this binary was built with the CUDA backend.
bool cuda_backend_built();
// Number of visible GPUs (0 without the CUDA backend).
int cuda_device_count();

}  // namespace tessera
