// Token + position embedding, forward and backward.
#include "runtime/cuda/backend.h"
#include "runtime/cuda/state.cuh"

namespace tessera::cuda {
namespace {

constexpr int kBlock = 256;

// out[b, t, :] = wte[tokens[b, t] - vocab_start, :] + wpe[t, :]; one thread per output element.
// Tokens outside this rank's rows [vocab_start, vocab_start + wte_rows) give zero (the
// tensor-parallel sum fills them in); wpe == nullptr means no position term.
template <typename T>
__global__ void encoder_forward_kernel(T* out, const int32_t* tokens, const T* wte, const T* wpe,
                                       int64_t rows, int64_t T_len, int64_t C, int64_t vocab_start,
                                       int64_t wte_rows) {
  const int64_t n = rows * C;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = i / C, c = i % C, t = row % T_len;
    const int64_t id = static_cast<int64_t>(tokens[row]) - vocab_start;
    float v = (id >= 0 && id < wte_rows) ? to_f32(wte[id * C + c]) : 0.0f;
    if (wpe != nullptr) v += to_f32(wpe[t * C + c]);
    out[i] = Elem<T>::from_f32(v);
  }
}

// dwte[tokens[row] - vocab_start, c] += dout[row, c], for tokens in this rank's rows only.
// Repeated tokens collide, hence the fp32 atomics; their order is not fixed, so dwte is
// reproducible to rounding, not bit for bit.
template <typename T>
__global__ void encoder_backward_wte_kernel(float* dwte, const T* dout, const int32_t* tokens,
                                            int64_t rows, int64_t C, int64_t vocab_start,
                                            int64_t wte_rows) {
  const int64_t n = rows * C;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = i / C, c = i % C;
    const int64_t id = static_cast<int64_t>(tokens[row]) - vocab_start;
    if (id >= 0 && id < wte_rows) atomicAdd(dwte + id * C + c, to_f32(dout[i]));
  }
}

}  // namespace

void encoder_forward(Device& dev, Tensor out, Tensor tokens, Tensor wte, Tensor wpe,
                     int64_t vocab_start) {
  CudaState& s = state_of(dev);
  check_dtype(tokens, DType::i32, "encoder_forward tokens");
  TS_ASSERT(tokens.shape.rank == 2,
            "encoder_forward: tokens must be (B, T), got " + tokens.shape.str());
  const int64_t T_len = tokens.dim(1), rows = tokens.numel(), C = wte.cols();
  const bool has_wpe = !wpe.empty();
  TS_ASSERT(wte.dtype == out.dtype && (!has_wpe || wpe.dtype == out.dtype),
            "encoder_forward: out, wte and wpe must share a dtype");
  TS_ASSERT(vocab_start >= 0, "encoder_forward: negative vocab_start");
  TS_ASSERT(!has_wpe || (wpe.cols() == C && wpe.rows() >= T_len),
            "encoder_forward: wpe " + wpe.shape.str() + " cannot cover T=" +
                std::to_string(T_len) + " with C=" + std::to_string(C));
  TS_ASSERT(out.numel() == rows * C,
            "encoder_forward: out " + out.shape.str() + " should hold B*T*C elements");
  if (rows == 0 || C == 0) return;
  dispatch_float(out.dtype, "encoder_forward", false, [&](auto tag) {
    using T = typename decltype(tag)::type;
    encoder_forward_kernel<T><<<grid_size(s, rows * C, kBlock), kBlock, 0, s.stream>>>(
        out.ptr<T>(), tokens.ptr<int32_t>(), wte.ptr<T>(), has_wpe ? wpe.ptr<T>() : nullptr, rows,
        T_len, C, vocab_start, wte.rows());
  });
  check_launch();
}

void encoder_backward(Device& dev, Tensor dwte, Tensor dwpe, Tensor dout, Tensor tokens,
                      int64_t vocab_start) {
  CudaState& s = state_of(dev);
  check_dtype(tokens, DType::i32, "encoder_backward tokens");
  TS_ASSERT(tokens.shape.rank == 2,
            "encoder_backward: tokens must be (B, T), got " + tokens.shape.str());
  const int64_t B = tokens.dim(0), T_len = tokens.dim(1), rows = tokens.numel();
  const int64_t C = rows ? dout.numel() / rows : 0;
  TS_ASSERT(dout.numel() == rows * C && (C > 0 || rows == 0),
            "encoder_backward: dout " + dout.shape.str() + " does not match tokens");
  if (rows == 0 || C == 0) return;
  if (!dwte.empty()) {
    check_dtype(dwte, DType::f32, "encoder_backward dwte");
    TS_ASSERT(dwte.cols() == C, "encoder_backward: dwte " + dwte.shape.str() + " width != C");
    dispatch_float(dout.dtype, "encoder_backward", false, [&](auto tag) {
      using T = typename decltype(tag)::type;
      encoder_backward_wte_kernel<T><<<grid_size(s, rows * C, kBlock), kBlock, 0, s.stream>>>(
          dwte.ptr<float>(), dout.ptr<T>(), tokens.ptr<int32_t>(), rows, C, vocab_start,
          dwte.rows());
    });
    check_launch();
  }
  if (!dwpe.empty()) {
    check_dtype(dwpe, DType::f32, "encoder_backward dwpe");
    TS_ASSERT(
        dwpe.cols() == C && dwpe.rows() >= T_len,
        "encoder_backward: dwpe " + dwpe.shape.str() + " cannot cover T=" + std::to_string(T_len));
    // Viewed as (B, T*C), dout's column sums are dwpe's first T rows.
    column_sum_accumulate(s, dwpe.ptr<float>(), dout.data, dout.dtype, B, T_len * C);
  }
}

}  // namespace tessera::cuda
