// How fast the training sample order delivers tokens: Mixture::samples over prepared sources,
// one thread, as the trainer calls it (one data-parallel rank's rows of each step).
//
// usage: bench_loader SEQ_LEN SAMPLES_PER_CALL CALLS DIR [DIR ...]
// With several DIRs the sources are mixed with temperature 3 (each DIR one source).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "data/mixture.h"

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: bench_loader SEQ_LEN SAMPLES_PER_CALL CALLS DIR [DIR ...]\n");
    return 2;
  }
  const int64_t T = std::atoll(argv[1]), n = std::atoll(argv[2]), calls = std::atoll(argv[3]);
  std::vector<tessera::data::SourceSpec> sources;
  for (int i = 4; i < argc; ++i) {
    std::string name = "s";  // (built in two steps: GCC 12 warns falsely on "s" + to_string)
    name += std::to_string(i - 4);
    sources.push_back({name, "", argv[i], 1.0});
  }
  const tessera::data::Mixture mix(sources, sources.size() > 1 ? 3.0 : 0.0, T, 1234);
  std::vector<int32_t> in(n * T), tg(n * T);
  mix.samples(0, n, in.data(), tg.data());  // first touch of the mapping outside the timing
  const auto t0 = std::chrono::steady_clock::now();
  int64_t check = 0;
  for (int64_t c = 1; c <= calls; ++c) {
    mix.samples(c * n * 7919, n, in.data(), tg.data());
    check += in[c % (n * T)];
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double per_call_ms = 1e3 * s / calls;
  std::printf("sources %zu | seq_len %lld | %lld samples per call | %.3f ms per call | %.1f M tokens/s | %.2f us per sample (check %lld)\n",
              sources.size(), static_cast<long long>(T), static_cast<long long>(n), per_call_ms,
              static_cast<double>(n * T * calls) / s / 1e6, 1e6 * s / static_cast<double>(n * calls),
              static_cast<long long>(check));
  return 0;
}
