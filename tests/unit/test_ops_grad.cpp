// Every CPU op's backward against central finite differences in float64.
// For an op y = f(x), the scalar L = sum(y * r) with fixed random r has dL/dx = backward(r).
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <vector>
#include <functional>

#include "runtime/ops.h"
#include "test_util.h"

namespace tessera {
namespace {

using test::HostTensor;

struct Fixture {
  std::unique_ptr<Device> dev = Device::create(DeviceKind::cpu);
};

// Checks d(sum(out * r))/d(x[k]) for `samples` entries of x against `analytic`.
void expect_grad(const std::function<void()>& forward, HostTensor& out, const HostTensor& r,
                 HostTensor& x, const HostTensor& analytic, const char* what, int samples = 24,
                 double tol = 1e-6) {
  const double h = 1e-6;
  auto loss = [&]() {
    forward();
    double s = 0;
    for (size_t i = 0; i < out.f64.size(); ++i) s += out.f64[i] * r.f64[i];
    return s;
  };
  const int64_t n = static_cast<int64_t>(x.f64.size());
  for (int s = 0; s < samples; ++s) {
    const int64_t k = (s * 7919) % n;
    const double saved = x[k];
    x[k] = saved + h;
    const double lp = loss();
    x[k] = saved - h;
    const double lm = loss();
    x[k] = saved;
    const double numeric = (lp - lm) / (2 * h);
    const double a = analytic.f64[k];
    EXPECT_NEAR(a, numeric, tol * std::max(1.0, std::abs(numeric)))
        << what << " element " << k;
  }
  forward();
}

TEST(OpsGrad, Matmul) {
  Fixture f;
  auto x = HostTensor::f({3, 5, 8}), w = HostTensor::f({6, 8}), b = HostTensor::f({6});
  auto y = HostTensor::f({3, 5, 6}), r = HostTensor::f({3, 5, 6});
  fill_normal(x, 1), fill_normal(w, 2), fill_normal(b, 3), fill_normal(r, 4);
  auto dx = HostTensor::f({3, 5, 8}), dw = HostTensor::f({6, 8}), db = HostTensor::f({6});
  auto fwd = [&] { ops::matmul_forward(*f.dev, y.t, x.t, w.t, b.t); };
  fwd();
  ops::matmul_backward(*f.dev, dx.t, dw.t, db.t, r.t, x.t, w.t);
  expect_grad(fwd, y, r, x, dx, "dx");
  expect_grad(fwd, y, r, w, dw, "dweight");
  expect_grad(fwd, y, r, b, db, "dbias");
  // Weight gradients accumulate: a second backward doubles them.
  const double before = dw[5];
  ops::matmul_backward(*f.dev, dx.t, dw.t, db.t, r.t, x.t, w.t);
  EXPECT_NEAR(dw[5], 2 * before, 1e-12);
}

TEST(OpsGrad, LayerNorm) {
  Fixture f;
  auto x = HostTensor::f({4, 16}), w = HostTensor::f({16}), b = HostTensor::f({16});
  auto y = HostTensor::f({4, 16}), r = HostTensor::f({4, 16});
  auto mean = HostTensor::f({4}), rstd = HostTensor::f({4});
  fill_normal(x, 5, 2.0), fill_normal(w, 6), fill_normal(b, 7), fill_normal(r, 8);
  auto dx = HostTensor::f({4, 16}), dw = HostTensor::f({16}), db = HostTensor::f({16});
  auto fwd = [&] { ops::layernorm_forward(*f.dev, y.t, mean.t, rstd.t, x.t, w.t, b.t, 1e-5f); };
  fwd();
  ops::layernorm_backward(*f.dev, dx.t, dw.t, db.t, r.t, x.t, w.t, mean.t, rstd.t);
  expect_grad(fwd, y, r, x, dx, "dx");
  expect_grad(fwd, y, r, w, dw, "dweight");
  expect_grad(fwd, y, r, b, db, "dbias");
}

TEST(OpsGrad, Gelu) {
  Fixture f;
  auto x = HostTensor::f({50}), y = HostTensor::f({50}), r = HostTensor::f({50});
  fill_normal(x, 9, 2.0), fill_normal(r, 10);
  auto dx = HostTensor::f({50});
  auto fwd = [&] { ops::gelu_forward(*f.dev, y.t, x.t); };
  fwd();
  ops::gelu_backward(*f.dev, dx.t, x.t, r.t);
  expect_grad(fwd, y, r, x, dx, "dx", 50);
  // Known values of the tanh approximation.
  auto one = HostTensor::f({1}), out = HostTensor::f({1});
  one[0] = 1.0;
  ops::gelu_forward(*f.dev, out.t, one.t);
  EXPECT_NEAR(out[0], 0.8411919906082768, 1e-12);
}

TEST(OpsGrad, AttentionIsCausalAndDifferentiable) {
  Fixture f;
  const int64_t B = 2, T = 5, NH = 2, C = 8;
  auto qkv = HostTensor::f({B, T, 3 * C}), y = HostTensor::f({B, T, C}), r = HostTensor::f({B, T, C});
  auto probs = HostTensor::f({B, NH, T, T}), dqkv = HostTensor::f({B, T, 3 * C});
  fill_normal(qkv, 11), fill_normal(r, 12);
  const ops::AttentionHeads heads{NH, NH, C / NH};
  auto fwd = [&] { ops::attention_forward(*f.dev, y.t, probs.t, qkv.t, heads); };
  fwd();
  ops::attention_backward(*f.dev, dqkv.t, r.t, qkv.t, y.t, probs.t, heads);
  expect_grad(fwd, y, r, qkv, dqkv, "dqkv", 3 * C * T);
  // Causality: changing the last position's keys/values leaves earlier outputs unchanged.
  const double y0 = y[0];
  qkv[(T - 1) * 3 * C + C] += 1.0;
  qkv[(T - 1) * 3 * C + 2 * C] += 1.0;
  fwd();
  EXPECT_EQ(y[0], y0);
}

// Grouped-query attention with ALiBi against a direct float64 evaluation of its definition,
// and its backward against finite differences (k and v heads shared by several q heads).
TEST(OpsGrad, GroupedQueryAttentionWithAlibi) {
  Fixture f;
  const int64_t B = 2, T = 6, HS = 4;
  for (const ops::AttentionHeads heads : {ops::AttentionHeads{4, 2, HS, 0, 0}, ops::AttentionHeads{3, 1, HS, 6, 3},
                                          ops::AttentionHeads{2, 2, HS, 5, 0}}) {
    const int64_t NH = heads.q_heads, W = heads.width(), C = NH * HS;
    auto qkv = HostTensor::f({B, T, W}), y = HostTensor::f({B, T, C}), r = HostTensor::f({B, T, C});
    auto probs = HostTensor::f({B, NH, T, T}), dqkv = HostTensor::f({B, T, W});
    fill_normal(qkv, 21), fill_normal(r, 22);
    auto fwd = [&] { ops::attention_forward(*f.dev, y.t, probs.t, qkv.t, heads); };
    fwd();
    const int64_t group = NH / heads.kv_heads;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < NH; ++h) {
        const double slope = heads.alibi_heads ? ops::alibi_slope(heads.alibi_first_head + h, heads.alibi_heads) : 0;
        const int64_t kq = NH + h / group, kv = NH + heads.kv_heads + h / group;
        for (int64_t t = 0; t < T; ++t) {
          std::vector<double> sc(t + 1);
          double mx = -1e300, sum = 0;
          for (int64_t u = 0; u <= t; ++u) {
            double dot = 0;
            for (int64_t i = 0; i < HS; ++i) dot += qkv[(b * T + t) * W + h * HS + i] * qkv[(b * T + u) * W + kq * HS + i];
            sc[u] = dot / std::sqrt(double(HS)) - slope * double(t - u);
            mx = std::max(mx, sc[u]);
          }
          for (double& v : sc) sum += v = std::exp(v - mx);
          for (int64_t i = 0; i < HS; ++i) {
            double o = 0;
            for (int64_t u = 0; u <= t; ++u) o += sc[u] / sum * qkv[(b * T + u) * W + kv * HS + i];
            ASSERT_NEAR(y[(b * T + t) * C + h * HS + i], o, 1e-12) << "b " << b << " h " << h << " t " << t;
          }
        }
      }
    ops::attention_backward(*f.dev, dqkv.t, r.t, qkv.t, y.t, probs.t, heads);
    expect_grad(fwd, y, r, qkv, dqkv, "dqkv", static_cast<int>(W * T));
  }
}

TEST(OpsGrad, AlibiSlopesFollowBloom) {
  // 8 heads: 2^-1 .. 2^-8. 6 heads: the 4-head slopes 2^-2, 2^-4, 2^-6, 2^-8, then the 8-head
  // sequence's odd ones 2^-1, 2^-3 (BLOOM's build_alibi_tensor).
  for (int g = 0; g < 8; ++g) EXPECT_DOUBLE_EQ(ops::alibi_slope(g, 8), std::pow(2.0, -(g + 1)));
  const double six[] = {0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125};
  for (int g = 0; g < 6; ++g) EXPECT_DOUBLE_EQ(ops::alibi_slope(g, 6), six[g]) << g;
}

TEST(OpsGrad, RmsNorm) {
  Fixture f;
  auto x = HostTensor::f({4, 16}), w = HostTensor::f({16}), y = HostTensor::f({4, 16}), r = HostTensor::f({4, 16});
  auto rstd = HostTensor::f({4});
  fill_normal(x, 31, 2.0), fill_normal(w, 32), fill_normal(r, 33);
  auto dx = HostTensor::f({4, 16}), dw = HostTensor::f({16});
  auto fwd = [&] { ops::rmsnorm_forward(*f.dev, y.t, rstd.t, x.t, w.t, 1e-5f); };
  fwd();
  double ss = 0;
  for (int c = 0; c < 16; ++c) ss += x[16 + c] * x[16 + c];
  EXPECT_NEAR(y[16 + 3], x[16 + 3] / std::sqrt(ss / 16 + double(1e-5f)) * w[3], 1e-12);
  ops::rmsnorm_backward(*f.dev, dx.t, dw.t, r.t, x.t, w.t, rstd.t);
  expect_grad(fwd, y, r, x, dx, "dx", 64);
  expect_grad(fwd, y, r, w, dw, "dweight", 16);
}

TEST(OpsGrad, SwiGlu) {
  Fixture f;
  auto x = HostTensor::f({3, 10}), y = HostTensor::f({3, 5}), r = HostTensor::f({3, 5}), dx = HostTensor::f({3, 10});
  fill_normal(x, 34, 2.0), fill_normal(r, 35);
  auto fwd = [&] { ops::swiglu_forward(*f.dev, y.t, x.t); };
  fwd();
  const double g = x[10 + 2], u = x[10 + 7];
  EXPECT_NEAR(y[5 + 2], g / (1 + std::exp(-g)) * u, 1e-14);
  ops::swiglu_backward(*f.dev, dx.t, x.t, r.t);
  expect_grad(fwd, y, r, x, dx, "dx", 30);
}

TEST(OpsGrad, GeluExact) {
  Fixture f;
  auto x = HostTensor::f({40}), y = HostTensor::f({40}), r = HostTensor::f({40}), dx = HostTensor::f({40});
  fill_normal(x, 36, 2.0), fill_normal(r, 37);
  auto fwd = [&] { ops::gelu_exact_forward(*f.dev, y.t, x.t); };
  fwd();
  ops::gelu_exact_backward(*f.dev, dx.t, x.t, r.t);
  expect_grad(fwd, y, r, x, dx, "dx", 40);
  auto one = HostTensor::f({1}), out = HostTensor::f({1});
  one[0] = 1.0;
  ops::gelu_exact_forward(*f.dev, out.t, one.t);
  EXPECT_NEAR(out[0], 0.8413447460685429, 1e-15);  // Phi(1)
}

// RoPE against complex multiplication: the pair (x_i, x_{i+d/2}) of a head at position p is
// multiplied by e^{i p theta^(-2i/d)}; columns past rotary_dims and the v heads are untouched;
// backward is the inverse rotation (and, being linear, matches finite differences).
TEST(OpsGrad, RotaryEmbedding) {
  Fixture f;
  const int64_t B = 2, T = 5, HS = 8, rot = 4;
  const ops::AttentionHeads heads{2, 1, HS};
  const int64_t W = heads.width();
  auto x = HostTensor::f({B, T, W}), y = HostTensor::f({B, T, W}), r = HostTensor::f({B, T, W});
  fill_normal(x, 38), fill_normal(r, 39);
  const float theta = 500.0f;
  auto fwd = [&] {
    y.f64 = x.f64;
    ops::rope_forward(*f.dev, y.t, heads, rot, theta, 3);
  };
  fwd();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < 4; ++h)
        for (int64_t i = 0; i < HS; ++i) {
          const int64_t k = (b * T + t) * W + h * HS + i;
          if (h == 3 || i >= rot) {  // the v head, and columns past rotary_dims
            EXPECT_EQ(y[k], x[k]);
            continue;
          }
          const int64_t j = i % (rot / 2), lo = k - i + j, hi = lo + rot / 2;
          const double angle = double(t + 3) * std::pow(double(theta), -2.0 * double(j) / double(rot));
          const std::complex<double> z = std::complex<double>(x[lo], x[hi]) * std::polar(1.0, angle);
          EXPECT_NEAR(y[k], i < rot / 2 ? z.real() : z.imag(), 1e-12);
        }
  auto d = HostTensor::f({B, T, W});
  d.f64 = r.f64;
  ops::rope_backward(*f.dev, d.t, heads, rot, theta, 3);
  expect_grad(fwd, y, r, x, d, "dx", static_cast<int>(B * T * W));
}

TEST(OpsGrad, Encoder) {
  Fixture f;
  const int64_t B = 2, T = 3, C = 4, Vp = 7;
  auto tok = HostTensor::i({B, T});
  for (int i = 0; i < B * T; ++i) tok.i32[i] = (i * 3) % 5;  // repeated ids accumulate
  auto wte = HostTensor::f({Vp, C}), wpe = HostTensor::f({T, C});
  auto y = HostTensor::f({B, T, C}), r = HostTensor::f({B, T, C});
  fill_normal(wte, 13), fill_normal(wpe, 14), fill_normal(r, 15);
  auto dwte = HostTensor::f({Vp, C}), dwpe = HostTensor::f({T, C});
  auto fwd = [&] { ops::encoder_forward(*f.dev, y.t, tok.t, wte.t, wpe.t); };
  fwd();
  ops::encoder_backward(*f.dev, dwte.t, dwpe.t, r.t, tok.t);
  expect_grad(fwd, y, r, wte, dwte, "dwte", Vp * C);
  expect_grad(fwd, y, r, wpe, dwpe, "dwpe", T * C);
}

TEST(OpsGrad, CrossEntropyFused) {
  Fixture f;
  const int64_t N = 4, V = 5, Vp = 8;
  auto logits = HostTensor::f({N, Vp}), losses = HostTensor::f({N}), tg = HostTensor::i({N});
  fill_normal(logits, 16);
  tg.i32 = {0, 4, 2, -1};  // the last row is ignored
  auto saved = logits.f64;
  const float dloss = 0.25f;
  ops::cross_entropy_forward_backward(*f.dev, losses.t, logits.t, tg.t, V, dloss);
  auto dlogits = logits.f64;
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t v = 0; v < Vp; ++v) {
      if (tg.i32[n] < 0 || v >= V) {
        EXPECT_EQ(dlogits[n * Vp + v], 0.0) << "row " << n << " col " << v;
        continue;
      }
      const double h = 1e-6;
      auto loss_at = [&](double delta) {
        double mx = -1e300, s = 0;
        for (int64_t u = 0; u < V; ++u) mx = std::max(mx, saved[n * Vp + u] + (u == v) * delta);
        for (int64_t u = 0; u < V; ++u) s += std::exp(saved[n * Vp + u] + (u == v) * delta - mx);
        return mx + std::log(s) - (saved[n * Vp + tg.i32[n]] + (tg.i32[n] == v) * delta);
      };
      EXPECT_NEAR(dlogits[n * Vp + v], dloss * (loss_at(h) - loss_at(-h)) / (2 * h), 1e-7);
    }
  }
  EXPECT_EQ(losses[3], 0.0);
  auto l2 = HostTensor::f({N});
  auto fresh = HostTensor::f({N, Vp});
  fresh.f64 = saved;
  ops::cross_entropy_forward(*f.dev, l2.t, fresh.t, tg.t, V);
  for (int64_t n = 0; n < N; ++n) EXPECT_DOUBLE_EQ(l2[n], losses[n]);
  EXPECT_EQ(fresh.f64, saved) << "forward-only must leave the logits untouched";
}

TEST(OpsGrad, DropoutMaskIsCounterBased) {
  Fixture f;
  auto x = HostTensor::f({1000}), y = HostTensor::f({1000}), dy = HostTensor::f({1000}),
       dx = HostTensor::f({1000});
  fill_normal(x, 17);
  for (double& v : dy.f64) v = 1.0;
  ops::dropout_forward(*f.dev, y.t, x.t, 0.3f, 42, 7);
  ops::dropout_backward(*f.dev, dx.t, dy.t, 0.3f, 42, 7);
  int kept = 0;
  const double keep_scale = 1.0 / (1.0 - static_cast<double>(0.3f));
  for (int i = 0; i < 1000; ++i) {
    const bool keep = y[i] != 0;
    kept += keep;
    EXPECT_NEAR(dx[i], keep ? keep_scale : 0.0, 1e-12);  // same mask in backward
    if (keep) {
      EXPECT_NEAR(y[i], x[i] * keep_scale, 1e-12);
    }
  }
  EXPECT_NEAR(kept / 1000.0, 0.7, 0.05);
  auto y2 = HostTensor::f({1000});
  ops::dropout_forward(*f.dev, y2.t, x.t, 0.3f, 42, 8);
  EXPECT_NE(y2.f64, y.f64) << "another stream gives another mask";
}

TEST(OpsGrad, AdamWMatchesClosedForm) {
  Fixture f;
  auto p = HostTensor::f({3}), g = HostTensor::f({3}), m = HostTensor::f({3}), v = HostTensor::f({3});
  p.f64 = {1.0, -2.0, 0.5};
  g.f64 = {0.1, -0.2, 0.0};
  ops::AdamWParams hp{0.01f, 0.9f, 0.95f, 1e-8f, 0.1f, 1, 2.0f};
  ops::adamw_step(*f.dev, p.t, g.t, m.t, v.t, Tensor{}, hp);
  for (int i = 0; i < 3; ++i) {
    const double gi = (i == 0 ? 0.1 : i == 1 ? -0.2 : 0.0) * 2.0, p0 = i == 0 ? 1.0 : i == 1 ? -2.0 : 0.5;
    const double mi = 0.1 * gi, vi = (1 - double(0.95f)) * gi * gi;
    const double mhat = mi / 0.1, vhat = vi / (1 - double(0.95f));
    const double expect = p0 * (1 - double(0.01f) * double(0.1f)) - double(0.01f) * mhat / (std::sqrt(vhat) + 1e-8);
    EXPECT_NEAR(p[i], expect, 1e-9) << i;
  }
}

}  // namespace
}  // namespace tessera
