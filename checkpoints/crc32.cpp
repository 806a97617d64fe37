#include "checkpoints/crc32.h"

#include <zlib.h>

#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define TESSERA_CRC32_CLMUL 1
#endif

namespace tessera::ckpt {
namespace {

#ifdef TESSERA_CRC32_CLMUL
#define TESSERA_CLMUL __attribute__((target("pclmul,sse4.1")))

TESSERA_CLMUL inline __m128i load(const unsigned char* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}
// The block at p, also stored to `to` when copying.
template <bool kCopy>
TESSERA_CLMUL inline __m128i take(const unsigned char* p, unsigned char* to) {
  const __m128i v = load(p);
  if constexpr (kCopy) _mm_storeu_si128(reinterpret_cast<__m128i*>(to), v);
  return v;
}
// x times k's two halves, plus the next block.
TESSERA_CLMUL inline __m128i fold(__m128i x, __m128i k, __m128i next) {
  const __m128i lo = _mm_clmulepi64_si128(x, k, 0x00), hi = _mm_clmulepi64_si128(x, k, 0x11);
  return _mm_xor_si128(_mm_xor_si128(hi, lo), next);
}

// The bit-reflected folding constants for polynomial 0x04C11DB7 (x^(4*128+32) mod P and so on,
// the paper's k1..k5) and the Barrett constants (P' and mu). Takes len >= 64, a multiple of 16;
// `crc` is the pre-inverted running value.
// With kCopy, every byte read is also written to dst[0, len) on the way.
template <bool kCopy>
TESSERA_CLMUL uint32_t crc32_clmul(uint32_t crc, const unsigned char* buf, size_t len, unsigned char* dst) {
  alignas(16) static const uint64_t k1k2[] = {0x0154442bd4, 0x01c6e41596};
  alignas(16) static const uint64_t k3k4[] = {0x01751997d0, 0x00ccaa009e};
  alignas(16) static const uint64_t k5k0[] = {0x0163cd6124, 0x0000000000};
  alignas(16) static const uint64_t poly[] = {0x01db710641, 0x01f7011641};
  __m128i x1 = _mm_xor_si128(take<kCopy>(buf, dst), _mm_cvtsi32_si128(static_cast<int>(crc)));
  __m128i x2 = take<kCopy>(buf + 16, dst + 16), x3 = take<kCopy>(buf + 32, dst + 32),
          x4 = take<kCopy>(buf + 48, dst + 48);
  buf += 64, dst += kCopy ? 64 : 0;
  len -= 64;
  __m128i k = _mm_load_si128(reinterpret_cast<const __m128i*>(k1k2));
  for (; len >= 64; buf += 64, dst += kCopy ? 64 : 0, len -= 64) {  // four lanes, 64 bytes a step
    x1 = fold(x1, k, take<kCopy>(buf, dst));
    x2 = fold(x2, k, take<kCopy>(buf + 16, dst + 16));
    x3 = fold(x3, k, take<kCopy>(buf + 32, dst + 32));
    x4 = fold(x4, k, take<kCopy>(buf + 48, dst + 48));
  }
  k = _mm_load_si128(reinterpret_cast<const __m128i*>(k3k4));  // the lanes into one
  x1 = fold(x1, k, x2);
  x1 = fold(x1, k, x3);
  x1 = fold(x1, k, x4);
  for (; len >= 16; buf += 16, dst += kCopy ? 16 : 0, len -= 16) x1 = fold(x1, k, take<kCopy>(buf, dst));
  // 128 bits to 64.
  const __m128i mask = _mm_setr_epi32(~0, 0, ~0, 0);
  x2 = _mm_clmulepi64_si128(x1, k, 0x10);
  x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), x2);
  k = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(k5k0));
  x2 = _mm_srli_si128(x1, 4);
  x1 = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, mask), k, 0x00), x2);
  // Barrett reduction to 32 bits.
  k = _mm_load_si128(reinterpret_cast<const __m128i*>(poly));
  x2 = _mm_clmulepi64_si128(_mm_and_si128(x1, mask), k, 0x10);
  x2 = _mm_clmulepi64_si128(_mm_and_si128(x2, mask), k, 0x00);
  return static_cast<uint32_t>(_mm_extract_epi32(_mm_xor_si128(x1, x2), 1));
}

bool cpu_has_clmul() {
  static const bool has = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
  return has;
}
#endif

}  // namespace

uint32_t crc32_update(uint32_t crc, const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
#ifdef TESSERA_CRC32_CLMUL
  if (n >= 64 && cpu_has_clmul()) {
    const size_t head = n & ~static_cast<size_t>(15);
    crc = ~crc32_clmul<false>(~crc, p, head, nullptr);
    p += head;
    n -= head;
  }
#endif
  return n ? static_cast<uint32_t>(crc32_z(crc, p, n)) : crc;
}

uint32_t crc32_copy(uint32_t crc, void* dst, const void* src, size_t n) {
  const auto* p = static_cast<const unsigned char*>(src);
  auto* d = static_cast<unsigned char*>(dst);
#ifdef TESSERA_CRC32_CLMUL
  if (n >= 64 && cpu_has_clmul()) {
    const size_t head = n & ~static_cast<size_t>(15);
    crc = ~crc32_clmul<true>(~crc, p, head, d);
    p += head, d += head;
    n -= head;
  }
#endif
  if (n) std::memcpy(d, p, n);
  return n ? static_cast<uint32_t>(crc32_z(crc, p, n)) : crc;
}

}  // namespace tessera::ckpt
