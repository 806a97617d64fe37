// libbench_sgemm_timer.so: an LD_PRELOAD shim that times every cblas_sgemm call of a process
// (wall clock, around the real OpenBLAS call) and, at exit, writes one line per call to the
// file named by TESSERA_SGEMM_LOG:
//   M N K seconds
// bench/cpu_train_vs_torch.sh uses it to measure the time tessera's GEMMs take inside a
// training step, contention with the other threads included, against bench_gemm_probe's
// isolated rate. Nothing is recorded unless TESSERA_SGEMM_LOG is set.
#include <cblas.h>
#include <dlfcn.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <vector>

namespace {

struct Call {
  int m, n, k;
  double seconds;
};

using SgemmFn = decltype(&cblas_sgemm);

struct Recorder {
  std::mutex mutex;
  std::vector<Call> calls;
  const char* path = std::getenv("TESSERA_SGEMM_LOG");
  SgemmFn real = reinterpret_cast<SgemmFn>(dlsym(RTLD_NEXT, "cblas_sgemm"));

  Recorder() { calls.reserve(1 << 16); }
  ~Recorder() {
    if (!path) return;
    if (FILE* f = std::fopen(path, "w")) {
      for (const Call& c : calls) std::fprintf(f, "%d %d %d %.9f\n", c.m, c.n, c.k, c.seconds);
      std::fclose(f);
    }
  }
};

Recorder& recorder() {
  static Recorder r;
  return r;
}

}  // namespace

extern "C" void cblas_sgemm(OPENBLAS_CONST enum CBLAS_ORDER order,
                            OPENBLAS_CONST enum CBLAS_TRANSPOSE trans_a,
                            OPENBLAS_CONST enum CBLAS_TRANSPOSE trans_b, OPENBLAS_CONST blasint m,
                            OPENBLAS_CONST blasint n, OPENBLAS_CONST blasint k,
                            OPENBLAS_CONST float alpha, OPENBLAS_CONST float* a,
                            OPENBLAS_CONST blasint lda, OPENBLAS_CONST float* b,
                            OPENBLAS_CONST blasint ldb, OPENBLAS_CONST float beta, float* c,
                            OPENBLAS_CONST blasint ldc) {
  Recorder& r = recorder();
  if (!r.real) {
    std::fprintf(stderr, "sgemm_timer: the real cblas_sgemm was not found\n");
    std::abort();
  }
  const auto t0 = std::chrono::steady_clock::now();
  r.real(order, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!r.path) return;
  std::lock_guard<std::mutex> lock(r.mutex);
  r.calls.push_back({static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), s});
}
