// The whole stage in float64, for every family: parameter gradients against finite differences
// of the loss, recomputation equal to stored activations, initialisation independent of how it
// is run.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <string>
#include <tuple>

#include "model/init.h"
#include "model/instance.h"
#include "runtime/ops.h"

namespace tessera {
namespace {

ModelConfig tiny_config(double dropout, const std::string& family = "gpt2") {
  ModelConfig c;
  model_apply_family(c, family);
  c.n_layer = 2;
  c.d_model = 8;
  c.n_head = 2;
  c.vocab_size = 11;
  c.seq_len = 4;
  c.dropout = dropout;
  if (family == "llama") c.d_model = 16, c.n_kv_head = 1;  // grouped-query: 2 q heads share k, v
  if (family == "neox") c.d_model = 16;                   // 25% of 8 dimensions rotated
  if (family == "bloom") c.d_model = 24, c.n_head = 3;     // ALiBi with 3 heads (not 2^k)
  return c;
}

struct Tiny {
  ModelConfig cfg;
  std::unique_ptr<Device> dev = Device::create(DeviceKind::cpu);
  std::unique_ptr<ModelInstance> model;
  std::vector<int32_t> tok, tgt;
  std::vector<double> losses;
  Tensor tokens, targets, loss_t;
  const int64_t B = 2;

  Tiny(double dropout, Recompute recompute, const std::string& family = "gpt2")
      : cfg(tiny_config(dropout, family)) {
    RunShape s;
    s.micro_batch = B;
    s.seq_len = cfg.seq_len;
    s.recompute = recompute;
    s.compute = DType::f64;
    model = std::make_unique<ModelInstance>(cfg, stage_spec_whole(cfg), s, *dev, DType::f64);
    init_parameters(*dev, model->registry(), 7);
    // Larger-than-default weights so every gradient is far from zero.
    for (Param& p : model->registry().all())
      if (p.init == ParamInit::normal) ops::scale_inplace(*dev, p.value, 10.0f);
    const int64_t n = B * cfg.seq_len;
    for (int64_t i = 0; i < n; ++i) {
      tok.push_back(static_cast<int32_t>((i * 5 + 3) % cfg.vocab_size));
      tgt.push_back(static_cast<int32_t>((i * 7 + 1) % cfg.vocab_size));
    }
    losses.assign(n, 0);
    tokens = Tensor{tok.data(), DType::i32, DeviceKind::cpu, {B, cfg.seq_len}};
    targets = Tensor{tgt.data(), DType::i32, DeviceKind::cpu, {B, cfg.seq_len}};
    loss_t = Tensor{losses.data(), DType::f64, DeviceKind::cpu, {n}};
  }
  double loss(bool with_backward) {
    const float dloss = with_backward ? 1.0f / static_cast<float>(losses.size()) : 0.0f;
    const DropoutKey key{3, 1, 0};
    model->stage().forward(*dev, 0, tokens, Tensor{}, targets, loss_t, key, true, dloss);
    double s = 0;
    for (double l : losses) s += l;
    if (with_backward) model->stage().backward(*dev, 0, tokens, Tensor{}, key);
    return s / static_cast<double>(losses.size());
  }
};

class ModelGrad : public ::testing::TestWithParam<std::tuple<std::string, double>> {};

TEST_P(ModelGrad, EveryParameterMatchesFiniteDifferences) {
  Tiny t(std::get<1>(GetParam()), Recompute::none, std::get<0>(GetParam()));
  ops::fill_zero(*t.dev, t.model->registry().flat_grads());
  t.loss(true);
  for (Param& p : t.model->registry().all()) {
    double* v = p.value.ptr<double>();
    const double* g = p.grad.ptr<double>();
    const int64_t n = p.value.numel();
    double max_err = 0, max_g = 0;
    for (int s = 0; s < 6; ++s) {
      int64_t k = (s * 104729 + 13) % n;
      if (p.name == "wte") k = (s % t.cfg.vocab_size) * t.cfg.d_model + s;  // real rows only
      const double h = 1e-5, saved = v[k];
      v[k] = saved + h;
      const double lp = t.loss(false);
      v[k] = saved - h;
      const double lm = t.loss(false);
      v[k] = saved;
      const double numeric = (lp - lm) / (2 * h);
      max_err = std::max(max_err, std::abs(numeric - g[k]));
      max_g = std::max(max_g, std::abs(numeric));
    }
    EXPECT_LT(max_err, 1e-6 * std::max(1.0, max_g)) << p.name;
  }
}

INSTANTIATE_TEST_SUITE_P(FamiliesAndDropout, ModelGrad,
                         ::testing::Combine(::testing::Values("gpt2", "llama", "neox", "bloom"),
                                            ::testing::Values(0.0, 0.2)),
                         [](const auto& info) {
                           return std::get<0>(info.param) +
                                  (std::get<1>(info.param) > 0 ? "_dropout" : "");
                         });

class ModelRecompute : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelRecompute, FullRecomputeGivesIdenticalGradients) {
  Tiny a(0.1, Recompute::none, GetParam()), b(0.1, Recompute::full, GetParam());
  ops::fill_zero(*a.dev, a.model->registry().flat_grads());
  ops::fill_zero(*b.dev, b.model->registry().flat_grads());
  EXPECT_EQ(a.loss(true), b.loss(true));
  auto& pa = a.model->registry().all();
  auto& pb = b.model->registry().all();
  for (size_t i = 0; i < pa.size(); ++i)
    for (int64_t k = 0; k < pa[i].grad.numel(); ++k)
      ASSERT_EQ(pa[i].grad.ptr<double>()[k], pb[i].grad.ptr<double>()[k]) << pa[i].name;
}

INSTANTIATE_TEST_SUITE_P(Families, ModelRecompute,
                         ::testing::Values("gpt2", "llama", "neox", "bloom"));

// Each family registers the components its preset names, and nothing else.
TEST(Model, FamiliesRegisterTheirComponents) {
  auto names = [](const std::string& family) {
    ParamRegistry reg;
    const ModelConfig c = tiny_config(0, family);
    Stage stage(c, stage_spec_whole(c), TensorSlice{}, reg);
    std::set<std::string> n;
    for (const Param& p : reg.all()) n.insert(p.name);
    return n;
  };
  const auto gpt2 = names("gpt2"), llama = names("llama"), neox = names("neox"), bloom = names("bloom");
  EXPECT_TRUE(gpt2.count("wpe") && gpt2.count("h.0.ln_1.bias") && gpt2.count("h.0.mlp.fc.bias"));
  EXPECT_FALSE(gpt2.count("lm_head.weight"));
  EXPECT_FALSE(llama.count("wpe") || llama.count("h.0.ln_1.bias") || llama.count("h.0.attn.qkv.bias") ||
               llama.count("h.1.mlp.proj.bias"));
  EXPECT_TRUE(llama.count("lm_head.weight"));
  EXPECT_TRUE(neox.count("lm_head.weight") && neox.count("h.1.attn.qkv.bias") && !neox.count("wpe"));
  EXPECT_TRUE(bloom.count("emb_ln.weight") && bloom.count("emb_ln.bias") && !bloom.count("wpe"));
  EXPECT_FALSE(bloom.count("lm_head.weight"));
  // Grouped-query: q (2 heads) + k, v (1 head each) of size 8; SwiGLU's fc holds gate and up.
  ParamRegistry reg;
  const ModelConfig c = tiny_config(0, "llama");
  Stage stage(c, stage_spec_whole(c), TensorSlice{}, reg);
  EXPECT_EQ(reg.get("h.0.attn.qkv.weight").global_shape[0], (2 + 2 * 1) * 8);
  EXPECT_EQ(reg.get("h.0.mlp.fc.weight").global_shape[0], 2 * c.ff());
  // Counts come from the registry: d = 16, F = 64, V = 11, L = 2, untied.
  const int64_t block = 16 + 32 * 16 + 16 * 16 + 16 + 2 * 64 * 16 + 16 * 64;
  EXPECT_EQ(c.num_parameters(), 11 * 16 + 2 * block + 16 + 11 * 16);
  EXPECT_DOUBLE_EQ(c.flops_per_token(), 6.0 * (2 * block + 16 + 11 * 16) + 12.0 * 2 * 16 * 4);
}

TEST(Model, InitialisationFollowsGpt2) {
  Tiny t(0.0, Recompute::none);
  ModelConfig cfg = tiny_config(0.0);
  cfg.n_layer = 6;
  cfg.d_model = 64;
  cfg.vocab_size = 300;
  RunShape s;
  s.compute = DType::f64;
  ModelInstance m(cfg, stage_spec_whole(cfg), s, *t.dev, DType::f64);
  init_parameters(*t.dev, m.registry(), 1);
  auto stddev = [](const Param& p, int64_t rows) {
    const double* v = p.value.ptr<double>();
    const int64_t n = rows * (p.value.numel() / p.value.dim(0));
    double s2 = 0;
    for (int64_t i = 0; i < n; ++i) s2 += v[i] * v[i];
    return std::sqrt(s2 / n);
  };
  const Param& wte = m.registry().get("wte");
  EXPECT_EQ(wte.value.dim(0), 384) << "vocabulary padded to a multiple of 128";
  EXPECT_NEAR(stddev(wte, 300), 0.02, 0.001);
  for (int64_t r = 300; r < 384; ++r) EXPECT_EQ(wte.value.ptr<double>()[r * 64], 0.0);
  EXPECT_NEAR(stddev(m.registry().get("h.0.mlp.fc.weight"), 256), 0.02, 0.001);
  EXPECT_NEAR(stddev(m.registry().get("h.0.attn.proj.weight"), 64), 0.02 / std::sqrt(12.0), 0.0005);
  EXPECT_EQ(m.registry().get("h.3.ln_1.weight").value.ptr<double>()[5], 1.0);
  EXPECT_EQ(m.registry().get("h.3.attn.qkv.bias").value.ptr<double>()[5], 0.0);
}

// model.init: NeoX's small_init / wang_init and the normal scheme with its scaled output init,
// measured on the initialised tensors (d = 256, L = 4: sqrt(2/1280) = 0.0395, 2/(4*16) = 0.03125).
TEST(Model, InitialisationSchemes) {
  Tiny t(0.0, Recompute::none);
  auto measured = [&](const std::string& family, const std::string& init, double init_std) {
    ModelConfig cfg = tiny_config(0.0, family);
    cfg.n_layer = 4, cfg.d_model = 256, cfg.n_head = 4, cfg.vocab_size = 384;
    if (!init.empty()) cfg.init = init, cfg.init_std = init_std;
    RunShape s;
    s.compute = DType::f64;
    ModelInstance m(cfg, stage_spec_whole(cfg), s, *t.dev, DType::f64);
    init_parameters(*t.dev, m.registry(), 3);
    auto rms = [&](const char* name) {
      const Param& p = m.registry().get(name);
      double s2 = 0;
      for (int64_t i = 0; i < p.value.numel(); ++i) s2 += p.value.ptr<double>()[i] * p.value.ptr<double>()[i];
      return std::sqrt(s2 / static_cast<double>(p.value.numel()));
    };
    return std::vector<double>{rms("wte"), rms("h.1.attn.qkv.weight"), rms("h.2.mlp.fc.weight"),
                               rms("h.0.attn.proj.weight"), rms("h.3.mlp.proj.weight")};
  };
  const double small = std::sqrt(2.0 / 1280.0), wang = 2.0 / (4.0 * 16.0);
  const auto neox = measured("neox", "", 0);  // the neox preset's default
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(neox[i], small, 0.02 * small) << i;
  for (int i = 3; i < 5; ++i) EXPECT_NEAR(neox[i], wang, 0.02 * wang) << i;
  const auto normal = measured("llama", "normal", 0.006);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(normal[i], 0.006, 0.02 * 0.006) << i;
  for (int i = 3; i < 5; ++i) EXPECT_NEAR(normal[i], 0.006 / std::sqrt(8.0), 0.02 * 0.006 / std::sqrt(8.0)) << i;
  // init_std is normal's alone; gpt2 is N(0, 0.02) whatever it says.
  const auto gpt2 = measured("gpt2", "gpt2", 0.5);
  EXPECT_NEAR(gpt2[1], 0.02, 0.0004);
  EXPECT_NEAR(gpt2[3], 0.02 / std::sqrt(8.0), 0.0004 / std::sqrt(8.0));
  EXPECT_EQ(tiny_config(0.0, "gpt2").init, "gpt2");
  EXPECT_EQ(tiny_config(0.0, "llama").init, "normal");
  EXPECT_EQ(tiny_config(0.0, "bloom").init, "normal");
}

TEST(Model, InitialisationOfAShardEqualsTheSliceOfTheWhole) {
  auto dev = Device::create(DeviceKind::cpu);
  Param whole;
  whole.name = "h.0.mlp.fc.weight";
  whole.global_shape = whole.local_shape = Shape{8, 6};
  std::vector<double> a(48), b(24);
  whole.value = Tensor{a.data(), DType::f64, DeviceKind::cpu, whole.global_shape};
  Param shard = whole;
  shard.local_shape = Shape{8, 3};  // column half, as a row-parallel split would hold
  shard.shard_dim = 1;
  shard.shard_rank = 1;
  shard.shard_ranks = 2;
  shard.value = Tensor{b.data(), DType::f64, DeviceKind::cpu, shard.local_shape};
  ParamRegistry r1, r2;
  r1.add(whole);
  r2.add(shard);
  r1.all()[0].value = whole.value;
  r2.all()[0].value = shard.value;
  init_parameters(*dev, r1, 99);
  init_parameters(*dev, r2, 99);
  for (int row = 0; row < 8; ++row)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(b[row * 3 + c], a[row * 6 + 3 + c]);
}

}  // namespace
}  // namespace tessera

namespace tessera {
namespace {

// Generation's incremental decoding (key/value caches, one token at a time) gives the logits
// the training forward gives for the whole sequence, at every position, for every family.
class ModelDecode : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelDecode, CachedDecodingEqualsTheFullForward) {
  Tiny t(0.0, Recompute::none, GetParam());
  t.loss(false);  // forward only: the logits of both samples stay in place
  const int64_t T = t.cfg.seq_len, Vp = t.cfg.padded_vocab();
  const std::vector<double> full = tensor_to_host_f64(*t.dev, t.model->stage().logits(0));
  Arena measure("decode", DeviceKind::cpu);
  t.model->stage().layout_decode(measure, DType::f64);
  Arena arena("decode", *t.dev, measure.used());
  t.model->stage().layout_decode(arena, DType::f64);
  for (int64_t b = 0; b < t.B; ++b)
    for (int64_t pos = 0; pos < T; ++pos) {
      int32_t id = t.tok[b * T + pos];
      const Tensor token{&id, DType::i32, DeviceKind::cpu, {1, 1}};
      const std::vector<double> row = tensor_to_host_f64(*t.dev, t.model->stage().decode(*t.dev, token, pos));
      for (int64_t v = 0; v < t.cfg.vocab_size; ++v)
        ASSERT_NEAR(row[v], full[(b * T + pos) * Vp + v], 1e-10) << "sample " << b << " position " << pos;
    }
}

INSTANTIATE_TEST_SUITE_P(Families, ModelDecode, ::testing::Values("gpt2", "llama", "neox", "bloom"));

}  // namespace
}  // namespace tessera
