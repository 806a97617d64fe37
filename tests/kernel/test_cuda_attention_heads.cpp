// CUDA attention with grouped-query heads and ALiBi against its CPU twin (method and tolerances
// in test_cuda_ops.cpp; plain multi-head attention in test_cuda_attention_optim.cpp).
//
// One table of cases, run in order on one device, so that graphs and ALiBi biases are reused
// across cases: the two 6-head ALiBi cases share a graph and must not share a bias.

#include "cuda_ops_fixture.h"

namespace tessera {
namespace {

using namespace kernel_test;

struct AttentionCase {
  const char* name;
  int64_t T;
  ops::AttentionHeads heads;  // q_heads, kv_heads, head_size, alibi_heads, alibi_first_head
};

const AttentionCase kAttentionCases[] = {
    {"GQA 4 q / 2 kv heads", 128, {4, 2, 64}},
    {"MQA 4 q / 1 kv head", 128, {4, 1, 64}},
    // 6 is not a power of two: heads 4 and 5 take the interleaved slopes 2^-1, 2^-3.
    {"ALiBi, 6 heads", 128, {6, 6, 64, 6, 0}},
    // The second tensor-parallel rank of a 12-head model: slopes of heads 6..11, not 0..5.
    {"ALiBi, heads 6..11 of 12", 128, {6, 6, 64, 12, 6}},
    // GQA and ALiBi together, at a length whose bias rows need padding (stride 104).
    {"GQA 4 q / 2 kv + ALiBi heads 4..7 of 12, T=100", 100, {4, 2, 64, 12, 4}},
};

TEST_F(CudaOps, AttentionGroupedQueryAndAlibi) {
  if (tessera::cuda_device_count() == 0)
    GTEST_SKIP() << "no CUDA GPU visible: CUDA op test not run";
  uint32_t seed = 200;
  for (const AttentionCase& tc : kAttentionCases) {
    SCOPED_TRACE(tc.name);
    const ops::AttentionHeads& heads = tc.heads;
    const int64_t B = 2, T = tc.T, NH = heads.q_heads, W = heads.width();
    const int64_t C = NH * heads.head_size;
    const auto qkv = random_values(B * T * W, seed++), dout = random_values(B * T * C, seed++);

    const ops::AuxSpec c_spec = ops::attention_aux_shape(DeviceKind::cpu, DType::f32, B, T, NH);
    Tensor c_qkv = cpu_f32({B, T, W}, qkv), c_out = alloc(cpu(), {B, T, C}, DType::f32);
    Tensor c_aux = alloc(cpu(), c_spec.shape, c_spec.dtype);
    Tensor c_dqkv = alloc(cpu(), {B, T, W}, DType::f32);
    ops::attention_forward(cpu(), c_out, c_aux, c_qkv, heads);
    ops::attention_backward(cpu(), c_dqkv, cpu_f32({B, T, C}, dout), c_qkv, c_out, c_aux, heads);

    const ops::AuxSpec g_spec = ops::attention_aux_shape(DeviceKind::cuda, DType::bf16, B, T, NH);
    Tensor g_qkv = gpu_bf16({B, T, W}, qkv), g_out = alloc(gpu(), {B, T, C}, DType::bf16);
    Tensor g_aux = alloc(gpu(), g_spec.shape, g_spec.dtype);
    Tensor g_dqkv = alloc(gpu(), {B, T, W}, DType::bf16);
    ops::attention_forward(gpu(), g_out, g_aux, g_qkv, heads);
    ops::attention_backward(gpu(), g_dqkv, gpu_bf16({B, T, C}, dout), g_qkv, g_out, g_aux, heads);

    const auto c_out_v = cpu_get(c_out);
    expect_close("attention out", gpu_get(g_out), c_out_v, 2e-2f * max_abs(c_out_v), 2e-2f);
    // The ALiBi bias is rounded to bf16 on the GPU (slopes 2^-(k+1/2) are not exact), hence
    // the looser statistics tolerance there.
    const float stats_atol = heads.alibi_heads > 0 ? 1e-2f : 5e-3f;
    expect_close("attention softmax stats", gpu_get(g_aux), attention_lse(qkv, B, T, heads),
                 stats_atol, 1e-3f);
    // dK and dV sum over the query heads of a group: compared over the whole packed row.
    const auto c_dqkv_v = cpu_get(c_dqkv);
    expect_close("attention dqkv", gpu_get(g_dqkv), c_dqkv_v, 3e-2f * max_abs(c_dqkv_v), 3e-2f);
  }
}

}  // namespace
}  // namespace tessera
