// bench_gemm_libraries: the fp32 GEMMs of one LLaMA- or GPT-shaped training step on the CPU,
// timed through every library tessera may link: OpenBLAS as tessera calls it today (the rows of
// C split over the OpenMP threads, one single-threaded sgemm each; runtime/cpu/ops_math.cpp),
// OpenBLAS with its own thread pool, oneDNN's dnnl_sgemm and oneDNN's matmul primitive (created
// once per shape, as a primitive cache would). Each shape is timed in isolation on warm buffers,
// median of --reps. `--list` prints the shapes only ("name M N K trans_a trans_b beta calls" per
// line), so bench/gemm_libraries.sh can time the very same list with torch.mm.
//
// usage: bench_gemm_libraries [--layers L] [--d-model C] [--heads H] [--kv-heads KV]
//          [--d-ff F] [--swiglu 0|1] [--seq-len T] [--micro-batch B] [--vocab V]
//          [--threads N] [--reps R] [--list]
#include <cblas.h>
#include <dnnl.hpp>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace {

struct GemmShape {
  std::string name;
  bool trans_a, trans_b;
  long M, N, K;
  float beta;
  long calls;  // per training step
};

long arg_value(int argc, char** argv, const char* flag, long fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (!std::strcmp(argv[i], flag)) return std::atol(argv[i + 1]);
  return fallback;
}

// Every linear layer of the step: forward out = in @ W^T, backward din = dout @ W and
// dW += dout^T @ in (the calls of ops_math.cpp's matmul_forward / matmul_backward).
std::vector<GemmShape> step_shapes(long L, long C, long W, long G, long F, long N, long Vp) {
  std::vector<GemmShape> s;
  auto linear = [&](const std::string& name, long out, long in, long calls) {
    s.push_back({"fwd " + name, false, true, N, out, in, 0, calls});
    s.push_back({"din " + name, false, false, N, in, out, 0, calls});
    s.push_back({"dW " + name, true, false, out, in, N, 1, calls});
  };
  linear("attn.qkv", W, C, L);
  linear("attn.proj", C, C, L);
  linear("mlp.fc", G, C, L);
  linear("mlp.proj", C, F, L);
  linear("lm head", Vp, C, 1);
  return s;
}

double median_seconds(const std::function<void()>& run, int reps) {
  run();  // warm-up: page faults, thread pool start, JIT
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  bool list = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "-h") || !std::strcmp(argv[i], "--help")) {
      std::puts("usage: bench_gemm_libraries [--layers L] [--d-model C] [--heads H] [--kv-heads KV]"
                " [--d-ff F] [--swiglu 0|1] [--seq-len T] [--micro-batch B] [--vocab V]"
                " [--threads N] [--reps R] [--list]");
      return 0;
    }
    if (!std::strcmp(argv[i], "--list")) list = true;
  }
  const long L = arg_value(argc, argv, "--layers", 6), C = arg_value(argc, argv, "--d-model", 384);
  const long H = arg_value(argc, argv, "--heads", 6), KV = arg_value(argc, argv, "--kv-heads", 2);
  const long F = arg_value(argc, argv, "--d-ff", 1024);
  const bool swiglu = arg_value(argc, argv, "--swiglu", 1) != 0;
  const long T = arg_value(argc, argv, "--seq-len", 256), B = arg_value(argc, argv, "--micro-batch", 8);
  const long V = arg_value(argc, argv, "--vocab", 257);
  const int threads = static_cast<int>(arg_value(argc, argv, "--threads", 2));
  const int reps = static_cast<int>(arg_value(argc, argv, "--reps", 9));
  const long HS = C / H, W = C + 2 * KV * HS, N = B * T, Vp = (V + 127) / 128 * 128;
  const auto shapes = step_shapes(L, C, W, swiglu ? 2 * F : F, F, N, Vp);
  if (list) {
    for (const GemmShape& g : shapes)
      std::printf("%s|%ld|%ld|%ld|%d|%d|%g|%ld\n", g.name.c_str(), g.M, g.N, g.K, g.trans_a,
                  g.trans_b, g.beta, g.calls);
    return 0;
  }
  omp_set_num_threads(threads);
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  const char* names[] = {"openblas-split", "openblas-pool", "dnnl_sgemm", "dnnl-matmul"};
  double total[4] = {}, flops = 0;
  std::printf("fp32 GEMMs of one step: %ld layers, d_model %ld, qkv width %ld, mlp %ld%s, %ld tokens,"
              " vocab %ld (padded %ld), %d threads, median of %d\n",
              L, C, W, F, swiglu ? " (swiglu)" : "", N, V, Vp, threads, reps);
  std::printf("%-16s %6s %6s %6s %5s", "gemm", "M", "N", "K", "calls");
  for (const char* n : names) std::printf(" %15s", n);
  std::printf("   (GFLOP/s)\n");
  for (const GemmShape& g : shapes) {
    std::vector<float> a(g.M * g.K), b(g.K * g.N), c(g.M * g.N, 0.0f);
    for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>((i * 7 % 13) - 6) * 0.01f;
    for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>((i * 5 % 11) - 5) * 0.01f;
    const long lda = g.trans_a ? g.M : g.K, ldb = g.trans_b ? g.K : g.N, ldc = g.N;
    const auto ta = g.trans_a ? CblasTrans : CblasNoTrans, tb = g.trans_b ? CblasTrans : CblasNoTrans;
    using dims = dnnl::memory::dims;
    const auto f32 = dnnl::memory::data_type::f32;
    dnnl::memory::desc a_md({g.M, g.K}, f32, g.trans_a ? dims{1, lda} : dims{lda, 1});
    dnnl::memory::desc b_md({g.K, g.N}, f32, g.trans_b ? dims{1, ldb} : dims{ldb, 1});
    dnnl::memory::desc c_md({g.M, g.N}, f32, dims{ldc, 1});
    dnnl::primitive_attr attr;
    if (g.beta != 0) {
      dnnl::post_ops sum;
      sum.append_sum(g.beta);
      attr.set_post_ops(sum);
    }
    dnnl::matmul matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_md, b_md, c_md), attr, engine));
    dnnl::memory am(a_md, engine, a.data()), bm(b_md, engine, b.data()), cm(c_md, engine, c.data());
    const std::function<void()> runs[4] = {
        [&] {
          openblas_set_num_threads(1);
#pragma omp parallel
          {
            const long nt = omp_get_num_threads(), id = omp_get_thread_num();
            const long chunk = ((g.M + nt - 1) / nt + 15) / 16 * 16;
            const long m0 = std::min(g.M, id * chunk), m1 = std::min(g.M, m0 + chunk);
            if (m1 > m0)
              cblas_sgemm(CblasRowMajor, ta, tb, m1 - m0, g.N, g.K, 1.0f,
                          g.trans_a ? a.data() + m0 : a.data() + m0 * lda, lda, b.data(), ldb,
                          g.beta, c.data() + m0 * ldc, ldc);
          }
        },
        [&] {
          openblas_set_num_threads(threads);
          cblas_sgemm(CblasRowMajor, ta, tb, g.M, g.N, g.K, 1.0f, a.data(), lda, b.data(), ldb,
                      g.beta, c.data(), ldc);
        },
        [&] {
          dnnl_sgemm(g.trans_a ? 'T' : 'N', g.trans_b ? 'T' : 'N', g.M, g.N, g.K, 1.0f, a.data(),
                     lda, b.data(), ldb, g.beta, c.data(), ldc);
        },
        [&] {
          matmul.execute(stream, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
          stream.wait();
        }};
    const double f = 2.0 * g.M * g.N * g.K;
    flops += f * g.calls;
    std::printf("%-16s %6ld %6ld %6ld %5ld", g.name.c_str(), g.M, g.N, g.K, g.calls);
    for (int i = 0; i < 4; ++i) {
      const double s = median_seconds(runs[i], reps);
      total[i] += s * g.calls;
      std::printf(" %15.1f", f / s / 1e9);
    }
    std::printf("\n");
  }
  for (int i = 0; i < 4; ++i)
    std::printf("gemm_libraries: library=%s flops_per_step=%.6g ms_per_step=%.2f gflops=%.1f\n",
                names[i], flops, total[i] * 1e3, flops / total[i] / 1e9);
  return 0;
}
