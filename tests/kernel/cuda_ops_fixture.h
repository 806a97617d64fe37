// Shared by the CUDA kernel tests: bf16 helpers, tolerance checks and the fixture that
// allocates on both devices. See test_cuda_ops.cpp for the method and tolerances.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "runtime/device.h"
#include "runtime/ops.h"
#include "runtime/philox.h"

namespace tessera::kernel_test {

// Round-to-nearest-even f32 -> bf16 bits, as both backends convert.
inline uint16_t bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float bf16_value(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float round_bf16(float f) {
  return bf16_value(bf16_bits(f));
}

// Uniform in [lo, hi), rounded to bf16 so CPU and GPU inputs are identical.
inline std::vector<float> random_values(int64_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = round_bf16(dist(rng));
  return v;
}

inline float max_abs(const std::vector<float>& v) {
  float m = 0;
  for (float x : v) m = std::max(m, std::fabs(x));
  return m;
}

inline void expect_close(const std::string& what, const std::vector<float>& got,
                  const std::vector<float>& want, float atol, float rtol) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int64_t bad = 0, worst = -1;
  float worst_excess = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const float err = std::fabs(got[i] - want[i]);
    const float limit = atol + rtol * std::fabs(want[i]);
    if (!(err <= limit)) {  // also catches NaN
      ++bad;
      const float excess = std::isnan(err) ? INFINITY : err - limit;
      if (worst < 0 || excess > worst_excess) {
        worst = static_cast<int64_t>(i);
        worst_excess = excess;
      }
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << got.size()
                    << " elements outside atol=" << atol << " rtol=" << rtol << "; worst at "
                    << worst << ": gpu " << (worst >= 0 ? got[worst] : 0.0f) << " vs cpu "
                    << (worst >= 0 ? want[worst] : 0.0f);
}

// Reference softmax statistics (B, q_heads, T): the row log-sum-exp of the scaled causal scores
// plus the ALiBi bias, in double, for qkv (B, T, heads.width()) laid out as ops.h says.
inline std::vector<float> attention_lse(const std::vector<float>& qkv, int64_t B, int64_t T,
                                        const ops::AttentionHeads& heads) {
  const int64_t NH = heads.q_heads, HS = heads.head_size, W = heads.width();
  const int64_t group = NH / heads.kv_heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(HS));
  std::vector<float> lse(B * NH * T);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < NH; ++h) {
      const double slope = heads.alibi_heads > 0
                               ? ops::alibi_slope(heads.alibi_first_head + h, heads.alibi_heads)
                               : 0.0;
      const int64_t q_col = h * HS, k_col = (NH + h / group) * HS;
      for (int64_t t = 0; t < T; ++t) {
        std::vector<double> s(t + 1);
        double mx = -INFINITY;
        for (int64_t j = 0; j <= t; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < HS; ++d)
            dot += double{qkv[(b * T + t) * W + q_col + d]} * qkv[(b * T + j) * W + k_col + d];
          s[j] = dot * scale - slope * static_cast<double>(t - j);
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (double x : s) sum += std::exp(x - mx);
        lse[(b * NH + h) * T + t] = static_cast<float>(mx + std::log(sum));
      }
    }
  return lse;
}

class CudaOps : public ::testing::Test {
 protected:
  void TearDown() override {
    for (auto& [dev, p] : allocations_) dev->release(p);
    allocations_.clear();
  }

  Device& cpu() {
    if (!cpu_) cpu_ = Device::create(DeviceKind::cpu);
    return *cpu_;
  }
  Device& gpu() {
    if (!gpu_) gpu_ = Device::create(DeviceKind::cuda);
    return *gpu_;
  }

  Tensor alloc(Device& dev, Shape shape, DType dtype) {
    Tensor t;
    t.dtype = dtype;
    t.device = dev.kind();
    t.shape = shape;
    t.data = dev.allocate(t.bytes());
    allocations_.emplace_back(&dev, t.data);
    return t;
  }

  // A tensor on `dev` holding `values`, stored as `dtype` (f32, f64 or bf16).
  Tensor put(Device& dev, Shape shape, DType dtype, const std::vector<float>& values) {
    Tensor t = alloc(dev, shape, dtype);
    EXPECT_EQ(static_cast<int64_t>(values.size()), t.numel());
    std::vector<unsigned char> bytes(t.bytes());
    for (size_t i = 0; i < values.size(); ++i) {
      if (dtype == DType::f32) {
        std::memcpy(bytes.data() + 4 * i, &values[i], 4);
      } else if (dtype == DType::f64) {
        const double d = values[i];
        std::memcpy(bytes.data() + 8 * i, &d, 8);
      } else {
        const uint16_t h = bf16_bits(values[i]);
        std::memcpy(bytes.data() + 2 * i, &h, 2);
      }
    }
    dev.copy_from_host(t, bytes.data());
    return t;
  }
  Tensor put_i32(Device& dev, Shape shape, const std::vector<int32_t>& values) {
    Tensor t = alloc(dev, shape, DType::i32);
    dev.copy_from_host(t, values.data());
    return t;
  }
  Tensor cpu_f32(Shape shape, const std::vector<float>& v) {
    return put(cpu(), shape, DType::f32, v);
  }
  Tensor gpu_bf16(Shape shape, const std::vector<float>& v) {
    return put(gpu(), shape, DType::bf16, v);
  }
  Tensor gpu_f32(Shape shape, const std::vector<float>& v) {
    return put(gpu(), shape, DType::f32, v);
  }

  std::vector<float> get(Device& dev, const Tensor& t) {
    std::vector<unsigned char> bytes(t.bytes());
    dev.copy_to_host(bytes.data(), t);
    std::vector<float> v(t.numel());
    for (size_t i = 0; i < v.size(); ++i) {
      if (t.dtype == DType::f32) {
        std::memcpy(&v[i], bytes.data() + 4 * i, 4);
      } else if (t.dtype == DType::f64) {
        double d;
        std::memcpy(&d, bytes.data() + 8 * i, 8);
        v[i] = static_cast<float>(d);
      } else if (t.dtype == DType::bf16) {
        uint16_t h;
        std::memcpy(&h, bytes.data() + 2 * i, 2);
        v[i] = bf16_value(h);
      } else {
        int32_t x;
        std::memcpy(&x, bytes.data() + 4 * i, 4);
        v[i] = static_cast<float>(x);
      }
    }
    return v;
  }
  std::vector<float> cpu_get(const Tensor& t) { return get(cpu(), t); }
  std::vector<float> gpu_get(const Tensor& t) { return get(gpu(), t); }

 private:
  // Declared before the allocations so the devices outlive them.
  std::unique_ptr<Device> cpu_, gpu_;
  std::vector<std::pair<Device*, void*>> allocations_;
};

}  // namespace tessera::kernel_test
