// The CUDA backend as seen from plain C++ (no CUDA types): the Device hooks and one launcher per
// op in runtime/ops.h, with the same signatures. Implemented in runtime/cuda/*.cu; compiled only
// when TESSERA_CUDA is on. Launchers enqueue on the device's stream and never synchronise.
#pragma once
#include <cstddef>
#include <memory>

#include "runtime/ops.h"

namespace tessera {

namespace cuda {

int device_count();
// Selects the GPU, creates the stream and the cuBLASLt/cuDNN handles.
CudaState* state_create(int ordinal);
void state_destroy(CudaState* s);
void* allocate(CudaState* s, size_t bytes);
void release(CudaState* s, void* p);
void copy_to_host(CudaState* s, void* dst, const Tensor& src);
void copy_from_host(CudaState* s, const Tensor& dst, const void* src);
void synchronize(CudaState* s);
// Dense bf16 tensor-core peak of the current GPU (from a per-device table), FLOP/s.
double peak_flops(CudaState* s);
const char* device_name(CudaState* s);

void encoder_forward(Device& dev, Tensor out, Tensor tokens, Tensor wte, Tensor wpe,
                     int64_t vocab_start);
void encoder_backward(Device& dev, Tensor dwte, Tensor dwpe, Tensor dout, Tensor tokens,
                      int64_t vocab_start);
void layernorm_forward(Device& dev, Tensor out, Tensor mean, Tensor rstd, Tensor in,
                       Tensor weight, Tensor bias, float eps);
void layernorm_backward(Device& dev, Tensor din, Tensor dweight, Tensor dbias, Tensor dout,
                        Tensor in, Tensor weight, Tensor mean, Tensor rstd);
void matmul_forward(Device& dev, Tensor out, Tensor in, Tensor weight, Tensor bias);
void matmul_bias_gelu_forward(Device& dev, Tensor out, Tensor pre, Tensor in, Tensor weight,
                              Tensor bias);
void matmul_backward(Device& dev, Tensor din, Tensor dweight, Tensor dbias, Tensor dout,
                     Tensor in, Tensor weight);
void gelu_forward(Device& dev, Tensor out, Tensor in);
void gelu_backward(Device& dev, Tensor din, Tensor in, Tensor dout);
void gelu_exact_forward(Device& dev, Tensor out, Tensor in);
void gelu_exact_backward(Device& dev, Tensor din, Tensor in, Tensor dout);
void swiglu_forward(Device& dev, Tensor out, Tensor in);
void swiglu_backward(Device& dev, Tensor din, Tensor in, Tensor dout);
void rmsnorm_forward(Device& dev, Tensor out, Tensor rstd, Tensor in, Tensor weight, float eps);
void rmsnorm_backward(Device& dev, Tensor din, Tensor dweight, Tensor dout, Tensor in,
                      Tensor weight, Tensor rstd);
// backward = true rotates by minus the angle.
void rope(Device& dev, Tensor qkv, const ops::AttentionHeads& heads, int64_t rotary_dims,
          float theta, int64_t position_offset, bool backward);
void attention_forward(Device& dev, Tensor out, Tensor aux, Tensor qkv,
                       const ops::AttentionHeads& heads);
void attention_backward(Device& dev, Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor aux,
                        const ops::AttentionHeads& heads);
void add(Device& dev, Tensor out, Tensor a, Tensor b);
void add_inplace(Device& dev, Tensor acc, Tensor x);
void dropout_forward(Device& dev, Tensor out, Tensor in, float p, uint64_t seed, uint64_t stream,
                     uint64_t offset);
void dropout_backward(Device& dev, Tensor din, Tensor dout, float p, uint64_t seed,
                      uint64_t stream, uint64_t offset);
void xent_vocab_max(Device& dev, Tensor rowmax, Tensor logits, int64_t valid);
void xent_vocab_sums(Device& dev, Tensor stats, Tensor logits, Tensor rowmax, Tensor targets,
                     int64_t vocab_start, int64_t valid);
void xent_vocab_finish(Device& dev, Tensor losses, Tensor logits, Tensor rowmax, Tensor stats,
                       Tensor targets, int64_t vocab_start, int64_t valid, float dloss);
void cross_entropy_forward_backward(Device& dev, Tensor losses, Tensor logits, Tensor targets,
                                    int64_t V, float dloss);
void cross_entropy_forward(Device& dev, Tensor losses, Tensor logits, Tensor targets, int64_t V);
void adamw_step(Device& dev, Tensor master, Tensor grad, Tensor m, Tensor v, Tensor working,
                const ops::AdamWParams& hp);
void sum_squares(Device& dev, Tensor out, Tensor x, bool accumulate);
void scale_inplace(Device& dev, Tensor x, float s);
void convert(Device& dev, Tensor dst, Tensor src);
void fill_zero(Device& dev, Tensor t);

}  // namespace cuda
}  // namespace tessera
