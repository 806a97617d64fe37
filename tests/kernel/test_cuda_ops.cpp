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

#include "cuda_ops_fixture.h"

namespace tessera {
namespace {

using namespace kernel_test;

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
}  // namespace
}  // namespace tessera
