// Helpers for the unit tests: owned host tensors and random fills.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "runtime/tensor.h"

namespace tessera::test {

// A host tensor that owns its memory (double or int32).
struct HostTensor {
  std::vector<double> f64;
  std::vector<int32_t> i32;
  Tensor t;

  static HostTensor f(Shape s) {
    HostTensor h;
    h.f64.assign(s.numel(), 0.0);
    h.t = Tensor{h.f64.data(), DType::f64, DeviceKind::cpu, s};
    return h;
  }
  static HostTensor i(Shape s) {
    HostTensor h;
    h.i32.assign(s.numel(), 0);
    h.t = Tensor{h.i32.data(), DType::i32, DeviceKind::cpu, s};
    return h;
  }
  HostTensor() = default;
  HostTensor(const HostTensor&) = delete;
  HostTensor(HostTensor&& o) noexcept : f64(std::move(o.f64)), i32(std::move(o.i32)), t(o.t) {
    t.data = f64.empty() ? static_cast<void*>(i32.data()) : static_cast<void*>(f64.data());
  }
  double& operator[](int64_t k) { return f64[k]; }
};

inline void fill_normal(HostTensor& h, uint64_t seed, double scale = 1.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> n(0.0, scale);
  for (double& v : h.f64) v = n(rng);
}

}  // namespace tessera::test
