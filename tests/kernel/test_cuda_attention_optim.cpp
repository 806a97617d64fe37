// CUDA attention, loss, optimizer and utility ops against their CPU twins (method and
// tolerances in test_cuda_ops.cpp).

#include <algorithm>

#include "cuda_ops_fixture.h"

namespace tessera {
namespace {

using namespace kernel_test;

TEST_F(CudaOps, AttentionForwardBackward) {
  if (tessera::cuda_device_count() == 0)
    GTEST_SKIP() << "no CUDA GPU visible: CUDA op test not run";
  const int64_t B = 2, T = 128, NH = 4, HS = 64, C = NH * HS;  // a flash-supported size
  const ops::AttentionHeads heads{NH, NH, HS};  // GQA and ALiBi: test_cuda_attention_heads.cpp
  const auto qkv = random_values(B * T * 3 * C, 60), dout = random_values(B * T * C, 61);

  const ops::AuxSpec c_spec = ops::attention_aux_shape(DeviceKind::cpu, DType::f32, B, T, NH);
  Tensor c_qkv = cpu_f32({B, T, 3 * C}, qkv), c_out = alloc(cpu(), {B, T, C}, DType::f32);
  Tensor c_aux = alloc(cpu(), c_spec.shape, c_spec.dtype);
  Tensor c_dqkv = alloc(cpu(), {B, T, 3 * C}, DType::f32);
  ops::attention_forward(cpu(), c_out, c_aux, c_qkv, heads);
  ops::attention_backward(cpu(), c_dqkv, cpu_f32({B, T, C}, dout), c_qkv, c_out, c_aux, heads);

  const ops::AuxSpec g_spec = ops::attention_aux_shape(DeviceKind::cuda, DType::bf16, B, T, NH);
  ASSERT_EQ(g_spec.dtype, DType::f32);
  Tensor g_qkv = gpu_bf16({B, T, 3 * C}, qkv), g_out = alloc(gpu(), {B, T, C}, DType::bf16);
  Tensor g_aux = alloc(gpu(), g_spec.shape, g_spec.dtype);
  Tensor g_dqkv = alloc(gpu(), {B, T, 3 * C}, DType::bf16);
  ops::attention_forward(gpu(), g_out, g_aux, g_qkv, heads);
  const auto out_first = gpu_get(g_out);
  ops::attention_forward(gpu(), g_out, g_aux, g_qkv, heads);  // second call: cached graph
  ops::attention_backward(gpu(), g_dqkv, gpu_bf16({B, T, C}, dout), g_qkv, g_out, g_aux, heads);

  const auto c_out_v = cpu_get(c_out);
  expect_close("attention out", gpu_get(g_out), c_out_v, 2e-2f * max_abs(c_out_v), 2e-2f);
  expect_close("attention out (cached graph)", out_first, gpu_get(g_out), 0.0f, 0.0f);
  expect_close("attention softmax stats", gpu_get(g_aux), attention_lse(qkv, B, T, heads), 5e-3f,
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

// Vocabulary-parallel cross-entropy: two vocabulary slices on one GPU, their row maxima and
// sums combined on the host as the tensor-parallel all-reduces would, must give the loss and
// dlogits of the whole-vocabulary CPU op.
TEST_F(CudaOps, VocabParallelCrossEntropyMatchesWholeVocabulary) {
  if (tessera::cuda_device_count() == 0)
    GTEST_SKIP() << "no CUDA GPU visible: CUDA op test not run";
  const int64_t N = 16, Vp = 72, V = 65, Vl = Vp / 2;
  const float dloss = 0.5f;
  const auto logits = random_values(N * Vp, 92, -3.0f, 3.0f);
  std::mt19937 rng(93);
  std::vector<int32_t> targets(N);
  for (auto& t : targets) t = static_cast<int32_t>(rng() % V);
  targets[3] = -1;
  targets[7] = V - 1;  // in the second slice, next to its padding
  targets[8] = 0;
  Tensor c_logits = cpu_f32({N, Vp}, logits), c_targets = put_i32(cpu(), {N}, targets);
  Tensor c_losses = alloc(cpu(), {N}, DType::f32);
  ops::cross_entropy_forward_backward(cpu(), c_losses, c_logits, c_targets, V, dloss);
  const auto c_d = cpu_get(c_logits);

  Tensor g_targets = put_i32(gpu(), {N}, targets);
  std::vector<Tensor> slice(2);
  std::vector<float> rowmax(N, -1e30f), stats(2 * N, 0.0f);
  for (int r = 0; r < 2; ++r) {
    std::vector<float> part(N * Vl);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < Vl; ++j) part[i * Vl + j] = logits[i * Vp + r * Vl + j];
    slice[r] = gpu_bf16({N, Vl}, part);
    Tensor m = alloc(gpu(), {N}, DType::f32);
    ops::xent_vocab_max(gpu(), m, slice[r], std::clamp<int64_t>(V - r * Vl, 0, Vl));
    const auto mv = gpu_get(m);
    for (int64_t i = 0; i < N; ++i) rowmax[i] = std::max(rowmax[i], mv[i]);  // all-reduce max
  }
  Tensor g_max = gpu_f32({N}, rowmax);
  for (int r = 0; r < 2; ++r) {
    Tensor s = alloc(gpu(), {N, 2}, DType::f32);
    ops::xent_vocab_sums(gpu(), s, slice[r], g_max, g_targets, r * Vl, std::clamp<int64_t>(V - r * Vl, 0, Vl));
    const auto sv = gpu_get(s);
    for (int64_t i = 0; i < 2 * N; ++i) stats[i] += sv[i];  // all-reduce sum
  }
  Tensor g_stats = gpu_f32({N, 2}, stats);
  for (int r = 0; r < 2; ++r) {
    Tensor losses = alloc(gpu(), {N}, DType::f32);
    ops::xent_vocab_finish(gpu(), losses, slice[r], g_max, g_stats, g_targets, r * Vl,
                           std::clamp<int64_t>(V - r * Vl, 0, Vl), dloss);
    expect_close("vocab-parallel losses (slice " + std::to_string(r) + ")", gpu_get(losses),
                 cpu_get(c_losses), 1e-2f, 1e-2f);
    const auto d = gpu_get(slice[r]);
    std::vector<float> want(N * Vl);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < Vl; ++j) want[i * Vl + j] = c_d[i * Vp + r * Vl + j];
    expect_close("vocab-parallel dlogits (slice " + std::to_string(r) + ")", d, want, 3e-3f, 1e-2f);
  }
}

// The tensor-parallel embedding: each vocabulary slice fills the tokens it owns (the position
// embedding added by one slice) and the sum of the slices is the whole lookup.
TEST_F(CudaOps, EncoderVocabularySlicesSumToTheWholeLookup) {
  if (tessera::cuda_device_count() == 0)
    GTEST_SKIP() << "no CUDA GPU visible: CUDA op test not run";
  const int64_t B = 2, T = 5, C = 8, Vp = 16, Vl = Vp / 2;
  const auto wte = random_values(Vp * C, 94), wpe = random_values(T * C, 95);
  std::vector<int32_t> tok(B * T);
  for (int64_t i = 0; i < B * T; ++i) tok[i] = static_cast<int32_t>((i * 7 + 3) % 13);
  Tensor c_out = alloc(cpu(), {B, T, C}, DType::f32);
  ops::encoder_forward(cpu(), c_out, put_i32(cpu(), {B, T}, tok), cpu_f32({Vp, C}, wte), cpu_f32({T, C}, wpe));
  std::vector<float> sum(B * T * C, 0.0f);
  for (int r = 0; r < 2; ++r) {
    std::vector<float> part(wte.begin() + r * Vl * C, wte.begin() + (r + 1) * Vl * C);
    Tensor out = alloc(gpu(), {B, T, C}, DType::bf16);
    ops::encoder_forward(gpu(), out, put_i32(gpu(), {B, T}, tok), gpu_bf16({Vl, C}, part),
                         r == 0 ? gpu_bf16({T, C}, wpe) : Tensor{}, r * Vl);
    const auto v = gpu_get(out);
    for (size_t i = 0; i < v.size(); ++i) sum[i] += v[i];
  }
  expect_close("encoder slices summed", sum, cpu_get(c_out), 2e-2f, 2e-2f);
}

// Dropout of a sequence-parallel shard: the offset continues the whole tensor's mask.
TEST_F(CudaOps, DropoutOffsetContinuesTheWholeMask) {
  if (tessera::cuda_device_count() == 0)
    GTEST_SKIP() << "no CUDA GPU visible: CUDA op test not run";
  const int64_t n = 1000, half = n / 2;
  const auto in = random_values(n, 96, 0.25f, 2.0f);
  Tensor whole = alloc(cpu(), {n}, DType::f32);
  ops::dropout_forward(cpu(), whole, cpu_f32({n}, in), 0.3f, 11, 5);
  const std::vector<float> second(in.begin() + half, in.end());
  Tensor g = alloc(gpu(), {half}, DType::bf16);
  ops::dropout_forward(gpu(), g, gpu_bf16({half}, second), 0.3f, 11, 5, static_cast<uint64_t>(half));
  const auto w = cpu_get(whole);
  expect_close("dropout shard with offset", gpu_get(g), std::vector<float>(w.begin() + half, w.end()),
               1e-2f, 1e-2f);
}

}  // namespace
}  // namespace tessera
