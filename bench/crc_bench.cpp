// The CRC-32 a verified checkpoint load computes, against the memory copy it does anyway: one
// core, a rank's share of a 124M GPT-2 training state (368 MiB) in 16 MiB pieces, as the
// checkpoint reader hands them over. Prints GB/s for the CRC alone, memcpy alone, the two one
// after the other (two passes over the source), and crc32_copy (one pass).
#include <zlib.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include "checkpoints/crc32.h"

namespace {
double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

int main() {
  using tessera::ckpt::crc32_copy;
  using tessera::ckpt::crc32_update;
  const size_t total = size_t{368} << 20, piece = size_t{16} << 20;
  std::vector<unsigned char> src(total), dst(total, 1);
  for (size_t i = 0; i < total; ++i) src[i] = static_cast<unsigned char>(i * 2654435761u >> 13);
  const auto want = static_cast<uint32_t>(crc32_z(0, src.data(), total));
  std::printf("GB/s:   crc32 | memcpy | crc32 then memcpy | crc32_copy\n");
  for (int round = 0; round < 5; ++round) {
    double t[5] = {};
    uint32_t a = 0, b = 0, c = 0;
    t[0] = now();
    for (size_t o = 0; o < total; o += piece) a = crc32_update(a, src.data() + o, piece);
    t[1] = now();
    for (size_t o = 0; o < total; o += piece) std::memcpy(dst.data() + o, src.data() + o, piece);
    t[2] = now();
    for (size_t o = 0; o < total; o += piece) {
      b = crc32_update(b, src.data() + o, piece);
      std::memcpy(dst.data() + o, src.data() + o, piece);
    }
    t[3] = now();
    std::memset(dst.data(), 0, total);  // not timed
    const double t3 = now();
    for (size_t o = 0; o < total; o += piece) c = crc32_copy(c, dst.data() + o, src.data() + o, piece);
    t[4] = now();
    const bool ok = a == want && b == want && c == want && std::memcmp(dst.data(), src.data(), total) == 0;
    std::printf("round %d: %5.1f | %6.1f | %17.1f | %10.1f%s\n", round + 1, total / (t[1] - t[0]) / 1e9,
                total / (t[2] - t[1]) / 1e9, total / (t[3] - t[2]) / 1e9, total / (t[4] - t3) / 1e9,
                ok ? "" : "  MISMATCH");
    if (!ok) return 1;
  }
  return 0;
}
