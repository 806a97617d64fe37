#include "runtime/device.h"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "runtime/error.h"
#include "runtime/cpu/backend.h"
#ifdef TESSERA_CUDA
#include "runtime/cuda/backend.h"
#endif

namespace tessera {

bool cuda_backend_built() {
#ifdef TESSERA_CUDA
  return true;
#else
  return false;
#endif
}

int cuda_device_count() {
#ifdef TESSERA_CUDA
  return cuda::device_count();
#else
  return 0;
#endif
}

std::vector<double> tensor_to_host_f64(Device& dev, const Tensor& t) {
  std::vector<char> raw(t.bytes());
  dev.copy_to_host(raw.data(), t);
  std::vector<double> out(t.numel());
  cpu::convert(Tensor{out.data(), DType::f64, DeviceKind::cpu, t.shape},
               Tensor{raw.data(), t.dtype, DeviceKind::cpu, t.shape});
  return out;
}

Device::Device(DeviceKind kind) : kind_(kind) {}

Device::~Device() {
#ifdef TESSERA_CUDA
  if (cuda_) cuda::state_destroy(cuda_);
#endif
}

std::unique_ptr<Device> Device::create(DeviceKind kind, int ordinal) {
  std::unique_ptr<Device> dev(new Device(kind));
  // GEMMs are split across OpenMP threads (cpu/ops_math.cpp), so OpenBLAS runs serially.
  openblas_set_num_threads(1);
  if (kind == DeviceKind::cuda) {
#ifdef TESSERA_CUDA
    if (cuda::device_count() <= ordinal)
      throw UserError("train.device = \"cuda\" but no CUDA GPU is visible to this process");
    dev->cuda_ = cuda::state_create(ordinal);
#else
    (void)ordinal;
    throw UserError(
        "train.device = \"cuda\" but this tessera was built without the CUDA backend "
        "(-DTESSERA_CUDA=OFF)");
#endif
  }
  return dev;
}

void* Device::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
#ifdef TESSERA_CUDA
  if (kind_ == DeviceKind::cuda) return cuda::allocate(cuda_, bytes);
#endif
  // 64-byte alignment for vector loads; memory is zeroed so arenas start clean.
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!p) throw UserError("out of host memory allocating " + std::to_string(bytes) + " bytes");
  std::memset(p, 0, bytes);
  return p;
}

void Device::release(void* ptr) {
  if (!ptr) return;
#ifdef TESSERA_CUDA
  if (kind_ == DeviceKind::cuda) return cuda::release(cuda_, ptr);
#endif
  std::free(ptr);
}

void Device::copy_to_host(void* dst, const Tensor& src) {
#ifdef TESSERA_CUDA
  if (kind_ == DeviceKind::cuda) return cuda::copy_to_host(cuda_, dst, src);
#endif
  std::memcpy(dst, src.data, src.bytes());
}

void Device::copy_from_host(const Tensor& dst, const void* src) {
#ifdef TESSERA_CUDA
  if (kind_ == DeviceKind::cuda) return cuda::copy_from_host(cuda_, dst, src);
#endif
  std::memcpy(dst.data, src, dst.bytes());
}

void Device::synchronize() {
#ifdef TESSERA_CUDA
  if (kind_ == DeviceKind::cuda) cuda::synchronize(cuda_);
#endif
}

const char* Device::name() const {
#ifdef TESSERA_CUDA
  if (kind_ == DeviceKind::cuda) return cuda::device_name(cuda_);
#endif
  return "cpu";
}

// CPU peak: measured once by an sgemm probe sized like the model's GEMMs (documented in
// docs/performance.md). MFU on the CPU is therefore relative to what OpenBLAS reaches here.
double Device::peak_flops() {
  if (peak_flops_ > 0) return peak_flops_;
#ifdef TESSERA_CUDA
  if (kind_ == DeviceKind::cuda) return peak_flops_ = cuda::peak_flops(cuda_);
#endif
  // Through the same GEMM path the model uses, so the probe sees the same threading; 1024³ is
  // where the rate levels off (512³ reached about half of it, 2048³ 3% more on 2 cores).
  const int n = 1024;
  std::vector<float> a(n * n, 1.0f), b(n * n, 0.5f), c(n * n);
  Tensor ta{a.data(), DType::f32, DeviceKind::cpu, {n, n}};
  Tensor tb{b.data(), DType::f32, DeviceKind::cpu, {n, n}};
  Tensor tc{c.data(), DType::f32, DeviceKind::cpu, {n, n}};
  double best = 0;
  for (int rep = 0; rep < 4; ++rep) {  // the first is a warm-up
    auto t0 = std::chrono::steady_clock::now();
    cpu::matmul_forward<float>(tc, ta, tb, Tensor{});
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (rep) best = std::max(best, 2.0 * n * n * n / s);
  }
  return peak_flops_ = best;
}

}  // namespace tessera
