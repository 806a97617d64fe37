// Every CUDA op against its CPU twin (runtime/cpu), through the public op set.
//
// Method: inputs are drawn on the host and rounded to bf16 first, so both backends see the
// same numbers; the CPU runs in f32, the GPU in its production dtypes (bf16 activations and
// weights, f32 gradients/statistics/optimizer state). Differences therefore come only from
// bf16 rounding of GPU outputs and from summation order.
//
// Tolerances (|gpu - cpu| <= atol + rtol * |cpu|):
//   - bf16 outputs: rtol ~1e-2 (bf16 keeps 8 significant bits: 2^-8 = 0.4% per rounding, and
//     an op may round an intermediate too), atol sized to the output's magnitude;
//   - f32 outputs computed from identical bf16 inputs (weight gradients, statistics, losses,
//     AdamW state): 1e-4 to 1e-3, summation order only;
//   - attention: atol proportional to the output's largest value, since cuDNN rounds the
//     probabilities to bf16 before the P @ V product;
//   - dropout masks and bf16 conversion: exact.
// Without a GPU every test skips with a visible reason.
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

namespace tessera {
namespace {

// Round-to-nearest-even f32 -> bf16 bits, as both backends convert.
uint16_t bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
float bf16_value(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
float round_bf16(float f) {
  return bf16_value(bf16_bits(f));
}

// Uniform in [lo, hi), rounded to bf16 so CPU and GPU inputs are identical.
std::vector<float> random_values(int64_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = round_bf16(dist(rng));
  return v;
}

float max_abs(const std::vector<float>& v) {
  float m = 0;
  for (float x : v) m = std::max(m, std::fabs(x));
  return m;
}

void expect_close(const std::string& what, const std::vector<float>& got,
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

TEST_F(CudaOps, DeviceReportsNameAndPeak) {
  if (tessera::cuda_device_count() == 0)
    GTEST_SKIP() << "no CUDA GPU visible: CUDA op test not run";
  EXPECT_GT(std::string(gpu().name()).size(), 0u);
  EXPECT_GE(gpu().peak_flops(), 1e14);  // every table entry and fallback is >= 312 TFLOP/s
}

TEST_F(CudaOps, EncoderForwardBackward) {
  if (tessera::cuda_device_count() == 0)
    GTEST_SKIP() << "no CUDA GPU visible: CUDA op test not run";
  const int64_t B = 2, T = 16, T_max = 32, Vp = 64, V = 50, C = 48;
  std::mt19937 rng(1);
  std::vector<int32_t> tokens(B * T);
  for (auto& t : tokens) t = static_cast<int32_t>(rng() % V);
  tokens[3] = tokens[7] = tokens[20] = 5;  // repeated tokens exercise the dwte atomics
  const auto wte = random_values(Vp * C, 2), wpe = random_values(T_max * C, 3);
  const auto dout = random_values(B * T * C, 4);
  const auto dwte0 = random_values(Vp * C, 5), dwpe0 = random_values(T_max * C, 6);

  Tensor c_out = alloc(cpu(), {B, T, C}, DType::f32);
  Tensor c_dwte = cpu_f32({Vp, C}, dwte0), c_dwpe = cpu_f32({T_max, C}, dwpe0);
  ops::encoder_forward(cpu(), c_out, put_i32(cpu(), {B, T}, tokens), cpu_f32({Vp, C}, wte),
                       cpu_f32({T_max, C}, wpe));
  ops::encoder_backward(cpu(), c_dwte, c_dwpe, cpu_f32({B, T, C}, dout),
                        put_i32(cpu(), {B, T}, tokens));

  Tensor g_out = alloc(gpu(), {B, T, C}, DType::bf16);
  Tensor g_dwte = gpu_f32({Vp, C}, dwte0), g_dwpe = gpu_f32({T_max, C}, dwpe0);
  Tensor g_tokens = put_i32(gpu(), {B, T}, tokens);
  ops::encoder_forward(gpu(), g_out, g_tokens, gpu_bf16({Vp, C}, wte), gpu_bf16({T_max, C}, wpe));
  ops::encoder_backward(gpu(), g_dwte, g_dwpe, gpu_bf16({B, T, C}, dout), g_tokens);

  expect_close("encoder out", gpu_get(g_out), cpu_get(c_out), 1e-2f, 1e-2f);
  expect_close("encoder dwte", gpu_get(g_dwte), cpu_get(c_dwte), 1e-5f, 1e-5f);
  expect_close("encoder dwpe", gpu_get(g_dwpe), cpu_get(c_dwpe), 1e-5f, 1e-5f);
}

TEST_F(CudaOps, LayerNormForwardBackward) {
  if (tessera::cuda_device_count() == 0)
    GTEST_SKIP() << "no CUDA GPU visible: CUDA op test not run";
  const int64_t N = 64, C = 96;  // C not a multiple of 64: exercises the per-lane tails
  const float eps = 1e-5f;
  auto in = random_values(N * C, 10, -2.0f, 3.0f);
  const auto w = random_values(C, 11, 0.5f, 1.5f), b = random_values(C, 12);
  const auto dout = random_values(N * C, 13);
  const auto dw0 = random_values(C, 14), db0 = random_values(C, 15);

  Tensor c_in = cpu_f32({N, C}, in), c_w = cpu_f32({C}, w), c_dout = cpu_f32({N, C}, dout);
  Tensor c_out = alloc(cpu(), {N, C}, DType::f32), c_din = alloc(cpu(), {N, C}, DType::f32);
  Tensor c_mean = alloc(cpu(), {N}, DType::f32), c_rstd = alloc(cpu(), {N}, DType::f32);
  Tensor c_dw = cpu_f32({C}, dw0), c_db = cpu_f32({C}, db0);
  ops::layernorm_forward(cpu(), c_out, c_mean, c_rstd, c_in, c_w, cpu_f32({C}, b), eps);
  ops::layernorm_backward(cpu(), c_din, c_dw, c_db, c_dout, c_in, c_w, c_mean, c_rstd);

  Tensor g_in = gpu_bf16({N, C}, in), g_w = gpu_bf16({C}, w), g_dout = gpu_bf16({N, C}, dout);
  Tensor g_out = alloc(gpu(), {N, C}, DType::bf16), g_din = alloc(gpu(), {N, C}, DType::bf16);
  Tensor g_mean = alloc(gpu(), {N}, DType::f32), g_rstd = alloc(gpu(), {N}, DType::f32);
  Tensor g_dw = gpu_f32({C}, dw0), g_db = gpu_f32({C}, db0);
  ops::layernorm_forward(gpu(), g_out, g_mean, g_rstd, g_in, g_w, gpu_bf16({C}, b), eps);
  ops::layernorm_backward(gpu(), g_din, g_dw, g_db, g_dout, g_in, g_w, g_mean, g_rstd);

  expect_close("layernorm out", gpu_get(g_out), cpu_get(c_out), 2e-2f, 1e-2f);
  expect_close("layernorm mean", gpu_get(g_mean), cpu_get(c_mean), 1e-5f, 1e-4f);
  expect_close("layernorm rstd", gpu_get(g_rstd), cpu_get(c_rstd), 1e-5f, 1e-4f);
  expect_close("layernorm din", gpu_get(g_din), cpu_get(c_din), 2e-2f, 2e-2f);
  expect_close("layernorm dweight", gpu_get(g_dw), cpu_get(c_dw), 1e-3f, 1e-3f);
  expect_close("layernorm dbias", gpu_get(g_db), cpu_get(c_db), 1e-4f, 1e-4f);
}

TEST_F(CudaOps, MatmulForwardWithAndWithoutBias) {
  if (tessera::cuda_device_count() == 0)
    GTEST_SKIP() << "no CUDA GPU visible: CUDA op test not run";
  const int64_t N = 64, C = 96, OC = 80;
  const auto in = random_values(N * C, 20), w = random_values(OC * C, 21),
             b = random_values(OC, 22);
  for (bool with_bias : {true, false}) {
    Tensor c_out = alloc(cpu(), {N, OC}, DType::f32);
    ops::matmul_forward(cpu(), c_out, cpu_f32({N, C}, in), cpu_f32({OC, C}, w),
                        with_bias ? cpu_f32({OC}, b) : Tensor{});
    Tensor g_out = alloc(gpu(), {N, OC}, DType::bf16);
    ops::matmul_forward(gpu(), g_out, gpu_bf16({N, C}, in), gpu_bf16({OC, C}, w),
                        with_bias ? gpu_bf16({OC}, b) : Tensor{});
    // |out| ~ sqrt(C/9) ~ 3: one bf16 rounding is ~0.01 there.
    expect_close(with_bias ? "matmul out (bias)" : "matmul out (no bias)", gpu_get(g_out),
                 cpu_get(c_out), 2e-2f, 1e-2f);
  }
}

TEST_F(CudaOps, MatmulBiasGeluForward) {
  if (tessera::cuda_device_count() == 0)
    GTEST_SKIP() << "no CUDA GPU visible: CUDA op test not run";
  // OC = 80 takes the fused cuBLASLt epilogue; OC = 36 (not a multiple of 8) the fallback.
  for (int64_t OC : {80, 36}) {
    const int64_t N = 64, C = 96;
    const auto in = random_values(N * C, 30), w = random_values(OC * C, 31);
    const auto b = random_values(OC, 32);
    Tensor c_out = alloc(cpu(), {N, OC}, DType::f32), c_pre = alloc(cpu(), {N, OC}, DType::f32);
    ops::matmul_bias_gelu_forward(cpu(), c_out, c_pre, cpu_f32({N, C}, in), cpu_f32({OC, C}, w),
                                  cpu_f32({OC}, b));
    Tensor g_out = alloc(gpu(), {N, OC}, DType::bf16), g_pre = alloc(gpu(), {N, OC}, DType::bf16);
    ops::matmul_bias_gelu_forward(gpu(), g_out, g_pre, gpu_bf16({N, C}, in), gpu_bf16({OC, C}, w),
                                  gpu_bf16({OC}, b));
    const std::string tag = " (OC=" + std::to_string(OC) + ")";
    expect_close("gelu matmul pre" + tag, gpu_get(g_pre), cpu_get(c_pre), 2e-2f, 1e-2f);
    expect_close("gelu matmul out" + tag, gpu_get(g_out), cpu_get(c_out), 2e-2f, 1e-2f);
  }
}

TEST_F(CudaOps, MatmulBackward) {
  if (tessera::cuda_device_count() == 0)
    GTEST_SKIP() << "no CUDA GPU visible: CUDA op test not run";
  const int64_t N = 64, C = 96, OC = 80;
  const auto in = random_values(N * C, 40), w = random_values(OC * C, 41);
  const auto dout = random_values(N * OC, 42);
  const auto dw0 = random_values(OC * C, 43), db0 = random_values(OC, 44);

  Tensor c_din = alloc(cpu(), {N, C}, DType::f32);
  Tensor c_dw = cpu_f32({OC, C}, dw0), c_db = cpu_f32({OC}, db0);
  ops::matmul_backward(cpu(), c_din, c_dw, c_db, cpu_f32({N, OC}, dout), cpu_f32({N, C}, in),
                       cpu_f32({OC, C}, w));
  Tensor g_din = alloc(gpu(), {N, C}, DType::bf16);
  Tensor g_dw = gpu_f32({OC, C}, dw0), g_db = gpu_f32({OC}, db0);
  ops::matmul_backward(gpu(), g_din, g_dw, g_db, gpu_bf16({N, OC}, dout), gpu_bf16({N, C}, in),
                       gpu_bf16({OC, C}, w));

  expect_close("matmul din", gpu_get(g_din), cpu_get(c_din), 2e-2f, 1e-2f);
  // bf16 x bf16 products are exact in fp32: only summation order differs.
  expect_close("matmul dweight (+=)", gpu_get(g_dw), cpu_get(c_dw), 1e-3f, 1e-3f);
  expect_close("matmul dbias (+=)", gpu_get(g_db), cpu_get(c_db), 1e-4f, 1e-4f);
}

TEST_F(CudaOps, GeluForwardBackward) {
  if (tessera::cuda_device_count() == 0)
    GTEST_SKIP() << "no CUDA GPU visible: CUDA op test not run";
  const int64_t n = 1000;
  const auto in = random_values(n, 50, -4.0f, 4.0f), dout = random_values(n, 51);
  Tensor c_in = cpu_f32({n}, in), c_out = alloc(cpu(), {n}, DType::f32);
  Tensor c_din = alloc(cpu(), {n}, DType::f32);
  ops::gelu_forward(cpu(), c_out, c_in);
  ops::gelu_backward(cpu(), c_din, c_in, cpu_f32({n}, dout));

  Tensor g_in = gpu_bf16({n}, in), g_out = alloc(gpu(), {n}, DType::bf16);
  ops::gelu_forward(gpu(), g_out, g_in);
  Tensor g_d = gpu_bf16({n}, dout);
  ops::gelu_backward(gpu(), g_d, g_in, g_d);  // din aliasing dout, as ops.h allows

  expect_close("gelu out", gpu_get(g_out), cpu_get(c_out), 1e-2f, 1e-2f);
  expect_close("gelu din (aliased)", gpu_get(g_d), cpu_get(c_din), 1e-2f, 1e-2f);
}

// Reference log-sum-exp of the scaled causal scores, to check cuDNN's statistics layout.
std::vector<float> attention_lse(const std::vector<float>& qkv, int64_t B, int64_t T, int64_t NH,
                                 int64_t HS) {
  const int64_t C = NH * HS;
  const double scale = 1.0 / std::sqrt(static_cast<double>(HS));
  std::vector<float> lse(B * NH * T);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < NH; ++h)
      for (int64_t t = 0; t < T; ++t) {
        std::vector<double> s(t + 1);
        double mx = -INFINITY;
        for (int64_t j = 0; j <= t; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < HS; ++d)
            dot += double{qkv[(b * T + t) * 3 * C + h * HS + d]} *
                   qkv[(b * T + j) * 3 * C + C + h * HS + d];
          s[j] = dot * scale;
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (double x : s) sum += std::exp(x - mx);
        lse[(b * NH + h) * T + t] = static_cast<float>(mx + std::log(sum));
      }
  return lse;
}

TEST_F(CudaOps, AttentionForwardBackward) {
  if (tessera::cuda_device_count() == 0)
    GTEST_SKIP() << "no CUDA GPU visible: CUDA op test not run";
  const int64_t B = 2, T = 128, NH = 4, HS = 64, C = NH * HS;  // a flash-supported size
  const auto qkv = random_values(B * T * 3 * C, 60), dout = random_values(B * T * C, 61);

  const ops::AuxSpec c_spec = ops::attention_aux_shape(DeviceKind::cpu, DType::f32, B, T, NH);
  Tensor c_qkv = cpu_f32({B, T, 3 * C}, qkv), c_out = alloc(cpu(), {B, T, C}, DType::f32);
  Tensor c_aux = alloc(cpu(), c_spec.shape, c_spec.dtype);
  Tensor c_dqkv = alloc(cpu(), {B, T, 3 * C}, DType::f32);
  ops::attention_forward(cpu(), c_out, c_aux, c_qkv, NH);
  ops::attention_backward(cpu(), c_dqkv, cpu_f32({B, T, C}, dout), c_qkv, c_out, c_aux, NH);

  const ops::AuxSpec g_spec = ops::attention_aux_shape(DeviceKind::cuda, DType::bf16, B, T, NH);
  ASSERT_EQ(g_spec.dtype, DType::f32);
  Tensor g_qkv = gpu_bf16({B, T, 3 * C}, qkv), g_out = alloc(gpu(), {B, T, C}, DType::bf16);
  Tensor g_aux = alloc(gpu(), g_spec.shape, g_spec.dtype);
  Tensor g_dqkv = alloc(gpu(), {B, T, 3 * C}, DType::bf16);
  ops::attention_forward(gpu(), g_out, g_aux, g_qkv, NH);
  const auto out_first = gpu_get(g_out);
  ops::attention_forward(gpu(), g_out, g_aux, g_qkv, NH);  // second call: cached graph
  ops::attention_backward(gpu(), g_dqkv, gpu_bf16({B, T, C}, dout), g_qkv, g_out, g_aux, NH);

  const auto c_out_v = cpu_get(c_out);
  expect_close("attention out", gpu_get(g_out), c_out_v, 2e-2f * max_abs(c_out_v), 2e-2f);
  expect_close("attention out (cached graph)", out_first, gpu_get(g_out), 0.0f, 0.0f);
  expect_close("attention softmax stats", gpu_get(g_aux), attention_lse(qkv, B, T, NH, HS), 5e-3f,
               1e-3f);
  const auto c_dqkv_v = cpu_get(c_dqkv);
  expect_close("attention dqkv", gpu_get(g_dqkv), c_dqkv_v, 3e-2f * max_abs(c_dqkv_v), 3e-2f);
}

TEST_F(CudaOps, AddAndAddInplace) {
  if (tessera::cuda_device_count() == 0)
    GTEST_SKIP() << "no CUDA GPU visible: CUDA op test not run";
  const int64_t n = 333;
  const auto a = random_values(n, 70), b = random_values(n, 71);
  Tensor c_out = alloc(cpu(), {n}, DType::f32), c_acc = cpu_f32({n}, a);
  ops::add(cpu(), c_out, cpu_f32({n}, a), cpu_f32({n}, b));
  ops::add_inplace(cpu(), c_acc, cpu_f32({n}, b));

  Tensor g_a = gpu_bf16({n}, a);
  ops::add(gpu(), g_a, g_a, gpu_bf16({n}, b));  // out aliasing a, as ops.h allows
  Tensor g_acc16 = gpu_bf16({n}, a), g_acc32 = gpu_f32({n}, a);
  ops::add_inplace(gpu(), g_acc16, gpu_bf16({n}, b));
  ops::add_inplace(gpu(), g_acc32, gpu_f32({n}, b));

  expect_close("add (aliased)", gpu_get(g_a), cpu_get(c_out), 1e-2f, 1e-2f);
  expect_close("add_inplace bf16", gpu_get(g_acc16), cpu_get(c_acc), 1e-2f, 1e-2f);
  expect_close("add_inplace f32", gpu_get(g_acc32), cpu_get(c_acc), 1e-6f, 1e-6f);
}

TEST_F(CudaOps, DropoutMasksMatchCpuExactly) {
  if (tessera::cuda_device_count() == 0)
    GTEST_SKIP() << "no CUDA GPU visible: CUDA op test not run";
  const int64_t n = 4099;
  const float p = 0.25f;
  const uint64_t seed = 1234, stream = 7;
  const auto in = random_values(n, 80, 0.25f, 2.0f);  // nonzero, so zeros mean "dropped"
  Tensor c_out = alloc(cpu(), {n}, DType::f32), c_din = alloc(cpu(), {n}, DType::f32);
  ops::dropout_forward(cpu(), c_out, cpu_f32({n}, in), p, seed, stream);
  ops::dropout_backward(cpu(), c_din, cpu_f32({n}, in), p, seed, stream);
  Tensor g_out = alloc(gpu(), {n}, DType::bf16), g_din = gpu_bf16({n}, in);
  ops::dropout_forward(gpu(), g_out, gpu_bf16({n}, in), p, seed, stream);
  ops::dropout_backward(gpu(), g_din, g_din, p, seed, stream);  // in place

  const auto c_v = cpu_get(c_out), g_v = gpu_get(g_out), g_d = gpu_get(g_din);
  int64_t dropped = 0, mismatched = 0;
  for (int64_t i = 0; i < n; ++i) {
    const bool keep = philox::uniform(seed, stream, static_cast<uint64_t>(i)) >= p;
    dropped += !keep;
    mismatched +=
        ((c_v[i] == 0.0f) != !keep) + ((g_v[i] == 0.0f) != !keep) + ((g_d[i] == 0.0f) != !keep);
  }
  EXPECT_EQ(mismatched, 0) << "dropout masks differ from philox::uniform >= p";
  EXPECT_GT(dropped, n / 8);
  EXPECT_LT(dropped, n * 3 / 8);
  expect_close("dropout out", g_v, c_v, 1e-2f, 1e-2f);
  expect_close("dropout din", g_d, cpu_get(c_din), 1e-2f, 1e-2f);
}

TEST_F(CudaOps, CrossEntropy) {
  if (tessera::cuda_device_count() == 0)
    GTEST_SKIP() << "no CUDA GPU visible: CUDA op test not run";
  const int64_t N = 16, Vp = 72, V = 65;
  const float dloss = 0.5f;
  const auto logits = random_values(N * Vp, 90, -3.0f, 3.0f);
  std::mt19937 rng(91);
  std::vector<int32_t> targets(N);
  for (auto& t : targets) t = static_cast<int32_t>(rng() % V);
  targets[2] = -1;  // ignored rows: loss 0, gradient 0
  targets[9] = -1;
  targets[5] = V - 1;

  Tensor c_logits = cpu_f32({N, Vp}, logits), c_targets = put_i32(cpu(), {N}, targets);
  Tensor c_eval = alloc(cpu(), {N}, DType::f32), c_losses = alloc(cpu(), {N}, DType::f32);
  ops::cross_entropy_forward(cpu(), c_eval, c_logits, c_targets, V);
  ops::cross_entropy_forward_backward(cpu(), c_losses, c_logits, c_targets, V, dloss);

  Tensor g_logits = gpu_bf16({N, Vp}, logits), g_targets = put_i32(gpu(), {N}, targets);
  Tensor g_eval = alloc(gpu(), {N}, DType::f32), g_losses = alloc(gpu(), {N}, DType::f32);
  ops::cross_entropy_forward(gpu(), g_eval, g_logits, g_targets, V);
  EXPECT_EQ(gpu_get(g_logits), gpu_get(gpu_bf16({N, Vp}, logits))) << "forward-only wrote logits";
  ops::cross_entropy_forward_backward(gpu(), g_losses, g_logits, g_targets, V, dloss);

  expect_close("xent losses (eval)", gpu_get(g_eval), cpu_get(c_eval), 1e-4f, 1e-4f);
  expect_close("xent losses", gpu_get(g_losses), cpu_get(c_losses), 1e-4f, 1e-4f);
  const auto g_d = gpu_get(g_logits);
  expect_close("xent dlogits", g_d, cpu_get(c_logits), 3e-3f, 1e-2f);
  for (int64_t r = 0; r < N; ++r) {
    for (int64_t c = 0; c < Vp; ++c) {
      if (c >= V || targets[r] < 0) {
        ASSERT_EQ(g_d[r * Vp + c], 0.0f) << "row " << r << " column " << c << " must be 0";
      }
    }
  }
}

TEST_F(CudaOps, AdamWStep) {
  if (tessera::cuda_device_count() == 0)
    GTEST_SKIP() << "no CUDA GPU visible: CUDA op test not run";
  const int64_t n = 1000;
  const ops::AdamWParams hp{1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 3, 0.5f};
  const auto master = random_values(n, 100), grad = random_values(n, 101);
  const auto m = random_values(n, 102, -0.1f, 0.1f), v = random_values(n, 103, 0.01f, 0.5f);
  Tensor c_p = cpu_f32({n}, master), c_m = cpu_f32({n}, m), c_v = cpu_f32({n}, v);
  ops::adamw_step(cpu(), c_p, cpu_f32({n}, grad), c_m, c_v, Tensor{}, hp);
  Tensor g_p = gpu_f32({n}, master), g_m = gpu_f32({n}, m), g_v = gpu_f32({n}, v);
  Tensor g_work = alloc(gpu(), {n}, DType::bf16);
  ops::adamw_step(gpu(), g_p, gpu_f32({n}, grad), g_m, g_v, g_work, hp);

  const auto c_pv = cpu_get(c_p);
  expect_close("adamw master", gpu_get(g_p), c_pv, 1e-6f, 1e-5f);
  expect_close("adamw m", gpu_get(g_m), cpu_get(c_m), 1e-7f, 1e-5f);
  expect_close("adamw v", gpu_get(g_v), cpu_get(c_v), 1e-7f, 1e-5f);
  std::vector<float> rounded(c_pv.size());
  for (size_t i = 0; i < c_pv.size(); ++i) rounded[i] = round_bf16(c_pv[i]);
  expect_close("adamw bf16 working copy", gpu_get(g_work), rounded, 0.0f, 8e-3f);
}

TEST_F(CudaOps, SumSquares) {
  if (tessera::cuda_device_count() == 0)
    GTEST_SKIP() << "no CUDA GPU visible: CUDA op test not run";
  const int64_t n = 10000;
  const auto x = random_values(n, 110), y = random_values(n, 111);
  Tensor c_out = alloc(cpu(), {1}, DType::f32);
  Tensor g_out = gpu_f32({1}, {123.0f});  // stale value: accumulate=false must clear it
  ops::sum_squares(cpu(), c_out, cpu_f32({n}, x), false);
  ops::sum_squares(gpu(), g_out, gpu_bf16({n}, x), false);
  expect_close("sum_squares", gpu_get(g_out), cpu_get(c_out), 0.0f, 1e-4f);
  ops::sum_squares(cpu(), c_out, cpu_f32({n}, y), true);
  ops::sum_squares(gpu(), g_out, gpu_f32({n}, y), true);
  expect_close("sum_squares (accumulate, f32 input)", gpu_get(g_out), cpu_get(c_out), 0.0f, 1e-4f);
}

TEST_F(CudaOps, ScaleInplace) {
  if (tessera::cuda_device_count() == 0)
    GTEST_SKIP() << "no CUDA GPU visible: CUDA op test not run";
  const int64_t n = 777;
  const auto x = random_values(n, 120);
  Tensor c_x = cpu_f32({n}, x);
  ops::scale_inplace(cpu(), c_x, 0.37f);
  Tensor g16 = gpu_bf16({n}, x), g32 = gpu_f32({n}, x);
  ops::scale_inplace(gpu(), g16, 0.37f);
  ops::scale_inplace(gpu(), g32, 0.37f);
  expect_close("scale_inplace bf16", gpu_get(g16), cpu_get(c_x), 1e-3f, 8e-3f);
  expect_close("scale_inplace f32", gpu_get(g32), cpu_get(c_x), 0.0f, 1e-6f);
}

TEST_F(CudaOps, ConvertRoundsLikeCpu) {
  if (tessera::cuda_device_count() == 0)
    GTEST_SKIP() << "no CUDA GPU visible: CUDA op test not run";
  const int64_t n = 513;
  std::mt19937 rng(130);
  std::normal_distribution<float> dist(0.0f, 10.0f);
  std::vector<float> x(n);  // full f32 precision, so bf16 rounding matters
  for (auto& v : x) v = dist(rng);

  Tensor c_16 = alloc(cpu(), {n}, DType::bf16);
  ops::convert(cpu(), c_16, cpu_f32({n}, x));
  Tensor g_32 = gpu_f32({n}, x), g_16 = alloc(gpu(), {n}, DType::bf16);
  Tensor g_back = alloc(gpu(), {n}, DType::f32), g_copy = alloc(gpu(), {n}, DType::f32);
  Tensor g_64 = alloc(gpu(), {n}, DType::f64);
  ops::convert(gpu(), g_16, g_32);
  ops::convert(gpu(), g_back, g_16);
  ops::convert(gpu(), g_copy, g_32);
  ops::convert(gpu(), g_64, g_32);

  const auto c_bits = cpu_get(c_16);
  expect_close("convert f32->bf16 vs cpu", gpu_get(g_16), c_bits, 0.0f, 0.0f);
  std::vector<float> rounded(n);
  for (int64_t i = 0; i < n; ++i) rounded[i] = round_bf16(x[i]);
  expect_close("convert f32->bf16 vs round-to-nearest-even", gpu_get(g_16), rounded, 0.0f, 0.0f);
  expect_close("convert bf16->f32", gpu_get(g_back), rounded, 0.0f, 0.0f);
  expect_close("convert f32->f32", gpu_get(g_copy), x, 0.0f, 0.0f);
  expect_close("convert f32->f64", gpu_get(g_64), x, 0.0f, 0.0f);
}

TEST_F(CudaOps, FillZero) {
  if (tessera::cuda_device_count() == 0)
    GTEST_SKIP() << "no CUDA GPU visible: CUDA op test not run";
  const int64_t n = 1001;
  const auto x = random_values(n, 140, 0.5f, 1.0f);
  Tensor c_x = cpu_f32({n}, x);
  Tensor g16 = gpu_bf16({n}, x), g32 = gpu_f32({n}, x);
  ops::fill_zero(cpu(), c_x);
  ops::fill_zero(gpu(), g16);
  ops::fill_zero(gpu(), g32);
  expect_close("fill_zero bf16", gpu_get(g16), cpu_get(c_x), 0.0f, 0.0f);
  expect_close("fill_zero f32", gpu_get(g32), std::vector<float>(n, 0.0f), 0.0f, 0.0f);
}

}  // namespace
}  // namespace tessera
