// bench_gemm_probe: the OpenBLAS sgemm rate at the GEMM shapes one training step of a GPT-2
// model issues on tessera's CPU backend (the same calls as runtime/cpu/ops_math.cpp makes:
// forward  out = in @ W^T, backward din = dout @ W and dW += dout^T @ in), each timed in
// isolation on warm buffers. Prints one row per shape and a summary line that
// bench/cpu_train_vs_torch.sh parses:
//   gemm_probe: flops_per_step=F seconds_per_step=S gflops=G
// where S is the time the step's GEMMs take at the isolated rates (the ideal GEMM time).
//
// usage: bench_gemm_probe [--layers L] [--d-model C] [--seq-len T] [--micro-batch B]
//                         [--vocab V] [--threads N] [--reps R]
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct GemmShape {
  const char* name;
  bool trans_a, trans_b;
  long M, N, K;
  float beta;
  long calls;  // per training step
};

double seconds_of(const GemmShape& g, int reps) {
  // Row-major operands laid out as tessera's: op(A) is (M,K), op(B) is (K,N), C is (M,N).
  std::vector<float> a(g.M * g.K), b(g.K * g.N), c(g.M * g.N);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>((i * 7 % 13) - 6) * 0.01f;
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>((i * 5 % 11) - 5) * 0.01f;
  const long lda = g.trans_a ? g.M : g.K, ldb = g.trans_b ? g.K : g.N;
  auto run = [&] {
    cblas_sgemm(CblasRowMajor, g.trans_a ? CblasTrans : CblasNoTrans,
                g.trans_b ? CblasTrans : CblasNoTrans, g.M, g.N, g.K, 1.0f, a.data(), lda, b.data(),
                ldb, g.beta, c.data(), g.N);
  };
  run();  // warm-up: page faults, thread pool start
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];  // median: the machine may be shared
}

long arg_value(int argc, char** argv, const char* flag, long fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (!std::strcmp(argv[i], flag)) return std::atol(argv[i + 1]);
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (!std::strcmp(argv[i], "-h") || !std::strcmp(argv[i], "--help")) {
      std::puts(
          "usage: bench_gemm_probe [--layers L] [--d-model C] [--seq-len T] [--micro-batch B] "
          "[--vocab V] [--threads N] [--reps R]");
      return 0;
    }
  const long L = arg_value(argc, argv, "--layers", 6), C = arg_value(argc, argv, "--d-model", 384);
  const long T = arg_value(argc, argv, "--seq-len", 256);
  const long B = arg_value(argc, argv, "--micro-batch", 8);
  const long V = arg_value(argc, argv, "--vocab", 257);
  const int threads = static_cast<int>(arg_value(argc, argv, "--threads", 2));
  const int reps = static_cast<int>(arg_value(argc, argv, "--reps", 7));
  openblas_set_num_threads(threads);
  const long N = B * T, F = 4 * C, Vp = (V + 127) / 128 * 128;

  const std::vector<GemmShape> shapes = {
      // forward: out (N,OC) = in (N,C) @ W (OC,C)^T
      {"fwd qkv", false, true, N, 3 * C, C, 0, L},
      {"fwd attn.proj", false, true, N, C, C, 0, L},
      {"fwd mlp.fc", false, true, N, F, C, 0, L},
      {"fwd mlp.proj", false, true, N, C, F, 0, L},
      {"fwd lm head", false, true, N, Vp, C, 0, 1},
      // backward, input gradient: din (N,C) = dout (N,OC) @ W (OC,C)
      {"bwd din qkv", false, false, N, C, 3 * C, 0, L},
      {"bwd din attn.proj", false, false, N, C, C, 0, L},
      {"bwd din mlp.fc", false, false, N, C, F, 0, L},
      {"bwd din mlp.proj", false, false, N, F, C, 0, L},
      {"bwd din lm head", false, false, N, C, Vp, 0, 1},
      // backward, weight gradient: dW (OC,C) += dout^T (OC,N) @ in (N,C)
      {"bwd dW qkv", true, false, 3 * C, C, N, 1, L},
      {"bwd dW attn.proj", true, false, C, C, N, 1, L},
      {"bwd dW mlp.fc", true, false, F, C, N, 1, L},
      {"bwd dW mlp.proj", true, false, C, F, N, 1, L},
      {"bwd dW lm head", true, false, Vp, C, N, 1, 1},
  };
  std::printf(
      "sgemm at the GEMM shapes of one step: %ld layers, d_model %ld, %ld tokens "
      "(micro-batch %ld x %ld), vocab %ld (padded %ld), %d threads, median of %d\n",
      L, C, N, B, T, V, Vp, threads, reps);
  std::printf("%-20s %6s %6s %6s %6s %10s %10s\n", "gemm", "M", "N", "K", "calls", "GFLOP/s",
              "ms/step");
  double flops = 0, seconds = 0;
  for (const GemmShape& g : shapes) {
    const double s = seconds_of(g, reps), f = 2.0 * g.M * g.N * g.K;
    flops += f * g.calls;
    seconds += s * g.calls;
    std::printf("%-20s %6ld %6ld %6ld %6ld %10.1f %10.2f\n", g.name, g.M, g.N, g.K, g.calls,
                f / s / 1e9, s * g.calls * 1e3);
  }
  std::printf("gemm_probe: flops_per_step=%.6g seconds_per_step=%.6g gflops=%.2f\n", flops, seconds,
              flops / seconds / 1e9);
  return 0;
}
