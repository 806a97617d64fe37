// The CUDA ops that distinguish the model families (runtime/cpu/ops_blocks.cpp holds their CPU
// twins): exact GELU, SwiGLU, RMSNorm and rotary position embedding. Method and tolerances as
// in test_cuda_ops.cpp.

#include "cuda_ops_fixture.h"

namespace tessera {
namespace {

using namespace kernel_test;

TEST_F(CudaOps, GeluExactForwardBackward) {
  if (tessera::cuda_device_count() == 0)
    GTEST_SKIP() << "no CUDA GPU visible: CUDA op test not run";
  const int64_t n = 1000;
  const auto in = random_values(n, 300, -4.0f, 4.0f), dout = random_values(n, 301);
  Tensor c_in = cpu_f32({n}, in), c_out = alloc(cpu(), {n}, DType::f32);
  Tensor c_din = alloc(cpu(), {n}, DType::f32);
  ops::gelu_exact_forward(cpu(), c_out, c_in);
  ops::gelu_exact_backward(cpu(), c_din, c_in, cpu_f32({n}, dout));

  Tensor g_in = gpu_bf16({n}, in), g_out = alloc(gpu(), {n}, DType::bf16);
  ops::gelu_exact_forward(gpu(), g_out, g_in);
  Tensor g_d = gpu_bf16({n}, dout);
  ops::gelu_exact_backward(gpu(), g_d, g_in, g_d);  // din aliasing dout, as ops.h allows

  expect_close("gelu_exact out", gpu_get(g_out), cpu_get(c_out), 1e-2f, 1e-2f);
  expect_close("gelu_exact din (aliased)", gpu_get(g_d), cpu_get(c_din), 1e-2f, 1e-2f);
}

TEST_F(CudaOps, SwigluForwardBackward) {
  if (tessera::cuda_device_count() == 0)
    GTEST_SKIP() << "no CUDA GPU visible: CUDA op test not run";
  const int64_t N = 64, F = 80;
  const auto in = random_values(N * 2 * F, 310, -4.0f, 4.0f), dout = random_values(N * F, 311);
  Tensor c_in = cpu_f32({N, 2 * F}, in), c_out = alloc(cpu(), {N, F}, DType::f32);
  Tensor c_din = alloc(cpu(), {N, 2 * F}, DType::f32);
  ops::swiglu_forward(cpu(), c_out, c_in);
  ops::swiglu_backward(cpu(), c_din, c_in, cpu_f32({N, F}, dout));

  Tensor g_in = gpu_bf16({N, 2 * F}, in), g_out = alloc(gpu(), {N, F}, DType::bf16);
  Tensor g_din = alloc(gpu(), {N, 2 * F}, DType::bf16);
  ops::swiglu_forward(gpu(), g_out, g_in);
  ops::swiglu_backward(gpu(), g_din, g_in, gpu_bf16({N, F}, dout));

  // |out| reaches 16 (gate and up up to 4): the relative part covers the bf16 rounding.
  expect_close("swiglu out", gpu_get(g_out), cpu_get(c_out), 2e-2f, 1e-2f);
  expect_close("swiglu din (gate | up)", gpu_get(g_din), cpu_get(c_din), 2e-2f, 1e-2f);
}

TEST_F(CudaOps, RmsNormForwardBackward) {
  if (tessera::cuda_device_count() == 0)
    GTEST_SKIP() << "no CUDA GPU visible: CUDA op test not run";
  const int64_t N = 64, C = 96;  // C not a multiple of 64: exercises the per-lane tails
  const float eps = 1e-6f;
  const auto in = random_values(N * C, 320, -2.0f, 3.0f);
  const auto w = random_values(C, 321, 0.5f, 1.5f), dout = random_values(N * C, 322);
  const auto dw0 = random_values(C, 323);

  Tensor c_in = cpu_f32({N, C}, in), c_w = cpu_f32({C}, w), c_dout = cpu_f32({N, C}, dout);
  Tensor c_out = alloc(cpu(), {N, C}, DType::f32), c_din = alloc(cpu(), {N, C}, DType::f32);
  Tensor c_rstd = alloc(cpu(), {N}, DType::f32), c_dw = cpu_f32({C}, dw0);
  ops::rmsnorm_forward(cpu(), c_out, c_rstd, c_in, c_w, eps);
  ops::rmsnorm_backward(cpu(), c_din, c_dw, c_dout, c_in, c_w, c_rstd);

  Tensor g_in = gpu_bf16({N, C}, in), g_w = gpu_bf16({C}, w), g_dout = gpu_bf16({N, C}, dout);
  Tensor g_out = alloc(gpu(), {N, C}, DType::bf16), g_din = alloc(gpu(), {N, C}, DType::bf16);
  Tensor g_rstd = alloc(gpu(), {N}, DType::f32), g_dw = gpu_f32({C}, dw0);
  ops::rmsnorm_forward(gpu(), g_out, g_rstd, g_in, g_w, eps);
  ops::rmsnorm_backward(gpu(), g_din, g_dw, g_dout, g_in, g_w, g_rstd);

  expect_close("rmsnorm out", gpu_get(g_out), cpu_get(c_out), 2e-2f, 1e-2f);
  expect_close("rmsnorm rstd", gpu_get(g_rstd), cpu_get(c_rstd), 1e-5f, 1e-4f);
  expect_close("rmsnorm din", gpu_get(g_din), cpu_get(c_din), 2e-2f, 2e-2f);
  expect_close("rmsnorm dweight (+=)", gpu_get(g_dw), cpu_get(c_dw), 1e-3f, 1e-3f);
}

// Partial and full rotation, GQA heads, a position offset far enough out for fp32 angles to
// drift: forward and backward against the CPU, backward undoing forward, and every column
// outside the rotated ones (v, and q/k columns past rotary_dims) left bit for bit.
TEST_F(CudaOps, RopeForwardBackward) {
  if (tessera::cuda_device_count() == 0)
    GTEST_SKIP() << "no CUDA GPU visible: CUDA op test not run";
  struct RopeCase {
    int64_t rotary_dims, position_offset;
  };
  const ops::AttentionHeads heads{4, 2, 32};
  const int64_t B = 2, T = 16, W = heads.width(), HS = heads.head_size;
  const float theta = 10000.0f;
  uint32_t seed = 330;
  for (const RopeCase rc : {RopeCase{16, 0}, RopeCase{32, 7}, RopeCase{8, 5000}}) {
    SCOPED_TRACE("rotary_dims " + std::to_string(rc.rotary_dims) + ", position_offset " +
                 std::to_string(rc.position_offset));
    const auto qkv = random_values(B * T * W, seed++), dqkv = random_values(B * T * W, seed++);
    Tensor c_qkv = cpu_f32({B, T, W}, qkv), c_dqkv = cpu_f32({B, T, W}, dqkv);
    ops::rope_forward(cpu(), c_qkv, heads, rc.rotary_dims, theta, rc.position_offset);
    ops::rope_backward(cpu(), c_dqkv, heads, rc.rotary_dims, theta, rc.position_offset);

    Tensor g_qkv = gpu_bf16({B, T, W}, qkv), g_dqkv = gpu_bf16({B, T, W}, dqkv);
    ops::rope_forward(gpu(), g_qkv, heads, rc.rotary_dims, theta, rc.position_offset);
    ops::rope_backward(gpu(), g_dqkv, heads, rc.rotary_dims, theta, rc.position_offset);
    const auto g_fwd = gpu_get(g_qkv), g_bwd = gpu_get(g_dqkv);
    expect_close("rope forward", g_fwd, cpu_get(c_qkv), 1e-2f, 1e-2f);
    expect_close("rope backward", g_bwd, cpu_get(c_dqkv), 1e-2f, 1e-2f);

    ops::rope_backward(gpu(), g_qkv, heads, rc.rotary_dims, theta, rc.position_offset);
    expect_close("rope backward after forward", gpu_get(g_qkv), qkv, 1.5e-2f, 1e-2f);

    int64_t touched = 0;
    for (int64_t r = 0; r < B * T; ++r)
      for (int64_t c = 0; c < W; ++c) {
        const bool rotated = c < (heads.q_heads + heads.kv_heads) * HS && c % HS < rc.rotary_dims;
        const int64_t i = r * W + c;
        if (!rotated) touched += (g_fwd[i] != qkv[i]) + (g_bwd[i] != dqkv[i]);
      }
    EXPECT_EQ(touched, 0) << "columns outside the rotated ones changed";
  }
}

}  // namespace
}  // namespace tessera
