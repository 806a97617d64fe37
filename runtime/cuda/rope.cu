// Rotary position embedding (Su et al. 2021, RoFormer), in place on the q and k heads of
// the packed qkv rows, with the rotate-half pairing of GPT-NeoX / Hugging Face LLaMA: column i
// of a head pairs with column i + rotary_dims/2 and both turn by the angle
// (position_offset + t) * theta^(-2i/rotary_dims). Backward turns by minus the angle (the
// rotation's transpose), on the gradients.
//
// One thread per (row, pair i): the angle depends on (t, i) only, so each thread computes one
// (cos, sin) and applies it to every q and k head of its row (q then k heads are contiguous).
// The angle is formed and reduced in fp64, so it stays accurate at any position: in fp32 its
// rounding grows with the position (~5e-4 rad at 8192, a quarter of a bf16 rounding of the
// result; ~4e-3 rad at 65536, twice one). One fp64 sincos per thread, shared by all heads, is
// noise next to their memory traffic.
#include "runtime/cuda/backend.h"
#include "runtime/cuda/state.cuh"

namespace tessera::cuda {
namespace {

constexpr int kBlock = 256;

template <typename T>
__global__ void rope_kernel(T* qkv, int64_t rows, int64_t T_len, int64_t width, int64_t head_size,
                            int64_t rotated_heads, int64_t half, double theta,
                            int64_t position_offset, bool backward) {
  const int64_t n = rows * half;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = idx / half, i = idx - row * half;
    const int64_t t = row % T_len;
    const double freq = pow(theta, -static_cast<double>(2 * i) / static_cast<double>(2 * half));
    double sin_d, cos_d;
    sincos(static_cast<double>(position_offset + t) * freq, &sin_d, &cos_d);
    const float c = static_cast<float>(cos_d);
    const float s = backward ? -static_cast<float>(sin_d) : static_cast<float>(sin_d);
    T* x = qkv + row * width + i;
    for (int64_t h = 0; h < rotated_heads; ++h, x += head_size) {
      const float x1 = to_f32(x[0]), x2 = to_f32(x[half]);
      x[0] = Elem<T>::from_f32(x1 * c - x2 * s);
      x[half] = Elem<T>::from_f32(x2 * c + x1 * s);
    }
  }
}

}  // namespace

void rope(Device& dev, Tensor qkv, const ops::AttentionHeads& heads, int64_t rotary_dims,
          float theta, int64_t position_offset, bool backward) {
  CudaState& s = state_of(dev);
  const char* op = backward ? "rope_backward" : "rope_forward";
  TS_ASSERT(qkv.shape.rank == 3 && qkv.cols() == heads.width(),
            std::string(op) + ": qkv " + qkv.shape.str() + " must be (B, T, " +
                std::to_string(heads.width()) + ") for the given heads");
  TS_ASSERT(rotary_dims >= 0 && rotary_dims % 2 == 0 && rotary_dims <= heads.head_size,
            std::string(op) + ": rotary_dims " + std::to_string(rotary_dims) +
                " must be even and at most the head size " + std::to_string(heads.head_size));
  TS_ASSERT(theta > 0.0f, std::string(op) + ": theta must be positive");
  const int64_t rows = qkv.rows(), T_len = qkv.dim(1), half = rotary_dims / 2;
  if (rows == 0 || half == 0) return;
  const int64_t n = rows * half;
  dispatch_float(qkv.dtype, op, false, [&](auto tag) {
    using T = typename decltype(tag)::type;
    rope_kernel<T><<<grid_size(s, n, kBlock), kBlock, 0, s.stream>>>(
        qkv.ptr<T>(), rows, T_len, heads.width(), heads.head_size, heads.q_heads + heads.kv_heads,
        half, static_cast<double>(theta), position_offset, backward);
  });
  check_launch();
}

}  // namespace tessera::cuda
