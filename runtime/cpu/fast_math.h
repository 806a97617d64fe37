// Vectorizable float exp shared by the CPU kernels (internal to runtime/cpu).
#pragma once
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <type_traits>

namespace tessera::cpu {

// e^x for float written so that loops calling it vectorize (a libm call does not): Cody-Waite
// reduction x = n ln2 + r, |r| <= ln2/2, and the Cephes expf polynomial; about 1 ulp. Inputs are
// clamped to [-87, 88] (e^-87 ~ 1.6e-38 stands in for smaller results); NaN stays NaN.
inline float exp_vectorizable(float x) {
  constexpr float kShift = 12582912.0f;  // 1.5 * 2^23: t's low mantissa bits hold round(x / ln2)
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float t = x * 1.44269504088896341f + kShift;
  const float n = t - kShift;
  const int32_t n_int = std::bit_cast<int32_t>(t) - std::bit_cast<int32_t>(kShift);  // no UB on NaN
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = (p * r) * r + r + 1.0f;
  return y * std::bit_cast<float>((n_int + 127) << 23);  // * 2^n
}

// The exp of the float kernels (training speed); double keeps libm (reference accuracy).
template <typename T>
inline T exp_kernel(T x) {
  if constexpr (std::is_same_v<T, float>)
    return exp_vectorizable(x);
  else
    return std::exp(x);
}

}  // namespace tessera::cpu
