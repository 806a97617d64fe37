// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11).
// Counter-based: the value for element i of stream s under seed k is a pure function of
// (k, s, i), so initialisation and dropout masks are identical however the tensors are split
// across ranks and devices. Usable from host and device code.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define TS_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define TS_HOST_DEVICE inline
#endif

namespace tessera::philox {

struct Block {
  uint32_t v[4];
};

TS_HOST_DEVICE void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

// Ten rounds of Philox4x32 on counter c with key k.
TS_HOST_DEVICE Block generate(uint64_t key, uint64_t counter_lo, uint64_t counter_hi) {
  uint32_t c0 = static_cast<uint32_t>(counter_lo), c1 = static_cast<uint32_t>(counter_lo >> 32);
  uint32_t c2 = static_cast<uint32_t>(counter_hi), c3 = static_cast<uint32_t>(counter_hi >> 32);
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(0xD2511F53u, c0, hi0, lo0);
    mulhilo(0xCD9E8D57u, c2, hi1, lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Block{{c0, c1, c2, c3}};
}

// Uniform in [0, 1) with 24 bits, for element `index` of `stream`.
TS_HOST_DEVICE float uniform(uint64_t seed, uint64_t stream, uint64_t index) {
  const Block b = generate(seed, index, stream);
  return static_cast<float>(b.v[0] >> 8) * (1.0f / 16777216.0f);
}

// Standard normal (Box-Muller on 2 x 32 bits) for element `index` of `stream`, in double so
// initialisation is the same number in every precision before rounding.
TS_HOST_DEVICE double normal(uint64_t seed, uint64_t stream, uint64_t index) {
  const Block b = generate(seed, index, stream);
  const double u1 = (static_cast<double>(b.v[0]) + 1.0) * (1.0 / 4294967297.0);  // (0, 1]
  const double u2 = static_cast<double>(b.v[1]) * (1.0 / 4294967296.0);          // [0, 1)
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// 64-bit mix of a string-like key, to derive stream ids from parameter names.
inline uint64_t hash_name(const char* s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (; *s; ++s) h = (h ^ static_cast<unsigned char>(*s)) * 1099511628211ull;
  return h;
}

}  // namespace tessera::philox
