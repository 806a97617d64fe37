// Causal attention through cuDNN's fused flash attention (cudnn-frontend graph API: sdpa /
// sdpa_backward), multi-head or grouped-query, optionally with ALiBi. This file builds, caches
// and runs graphs; its one kernel fills the ALiBi bias.
//
// Layout. qkv (B, T, W), W = (Hq + 2 Hkv) HS, packs [q heads | k heads | v heads] per token,
// head h at columns [h*HS, (h+1)*HS) of its part. cuDNN takes (B, H, T, HS) tensors with
// arbitrary strides and K/V with fewer heads than Q (query head h reads K/V head
// h / (Hq/Hkv), the grouping ops.h specifies), so Q, K and V are strided views of that one
// buffer (base pointers qkv, qkv + Hq*HS, qkv + (Hq+Hkv)*HS; strides {T*W, HS, W, 1}) and the
// output is written straight into (B, T, Hq*HS): no permute copies in either direction. dqkv
// mirrors qkv; cuDNN sums dK/dV over each group of query heads itself.
//
// ALiBi is an additive bias (1, Hq, T, T), broadcast over the batch, rather than cuDNN's own
// alibi_mask: that one derives the slopes from the head's index among this graph's heads and
// assumes a power-of-two count, while a tensor-parallel rank holds heads
// [alibi_first_head, alibi_first_head + Hq) of alibi_heads, any count (ops::alibi_slope).
//
// aux holds the softmax statistics (the row log-sum-exp of the scaled, biased, masked scores),
// (B, Hq, T) f32, which is all the backward pass needs to recompute the probabilities.
#include <cmath>
#include <map>
#include <memory>
#include <tuple>
#include <unordered_map>

#include "runtime/cuda/backend.h"
#include "runtime/cuda/state.cuh"

// cudnn-frontend is third-party; its headers trip two front-end diagnostics that say nothing
// about our code.
#pragma nv_diagnostic push
#pragma nv_diag_suppress 128   // loop is not reachable
#pragma nv_diag_suppress 2810  // ignoring return value with [[nodiscard]]
#include <cudnn_frontend.h>
#pragma nv_diagnostic pop

namespace fe = cudnn_frontend;

namespace tessera::cuda {

namespace {

// Fixed tensor ids, so a cached graph's variant pack is rebuilt from pointers alone.
enum Uid : int64_t { kQ = 1, kK, kV, kO, kStats, kDO, kDQ, kDK, kDV, kBias };

// A graph depends on whether there is a bias, not on its values: the slopes live in the bias
// buffer, keyed separately, so forward and backward (and every layer) share one.
struct AttentionKey {
  int64_t B, T, q_heads, kv_heads, HS;
  bool alibi, backward;
  bool operator<(const AttentionKey& o) const {
    return std::tie(B, T, q_heads, kv_heads, HS, alibi, backward) <
           std::tie(o.B, o.T, o.q_heads, o.kv_heads, o.HS, o.alibi, o.backward);
  }
};

struct AlibiKey {
  int64_t heads, T, first_head, total_heads;
  bool operator<(const AlibiKey& o) const {
    return std::tie(heads, T, first_head, total_heads) <
           std::tie(o.heads, o.T, o.first_head, o.total_heads);
  }
};

struct CudaFree {
  void operator()(void* p) const { (void)cudaFree(p); }
};
using DeviceBuffer = std::unique_ptr<void, CudaFree>;

}  // namespace

// Owned by CudaState; destroyed (by attention_cache_destroy) before the cuDNN handle.
struct AttentionGraphCache {
  std::map<AttentionKey, std::shared_ptr<fe::graph::Graph>> graphs;
  std::map<AlibiKey, DeviceBuffer> alibi_biases;  // bf16 (1, H, T, alibi_row_stride(T))
};

void attention_cache_destroy(AttentionGraphCache* cache) {
  delete cache;
}

namespace {

struct AttentionShape {
  int64_t B, T, q_heads, kv_heads, HS;
  int64_t alibi_heads, alibi_first_head;
  int64_t width() const { return (q_heads + 2 * kv_heads) * HS; }
  int64_t out_width() const { return q_heads * HS; }
  bool alibi() const { return alibi_heads > 0; }
};

// Rows of the bias padded to 8 elements (16 bytes), the alignment cuDNN's kernels load with.
int64_t alibi_row_stride(int64_t T) {
  return ceil_div(T, 8) * 8;
}

std::vector<int64_t> q_dims(const AttentionShape& a) {
  return {a.B, a.q_heads, a.T, a.HS};
}
std::vector<int64_t> kv_dims(const AttentionShape& a) {
  return {a.B, a.kv_heads, a.T, a.HS};
}
// Views into the packed (B, T, W) buffer.
std::vector<int64_t> qkv_strides(const AttentionShape& a) {
  return {a.T * a.width(), a.HS, a.width(), 1};
}
// Views into a (B, T, Hq*HS) buffer.
std::vector<int64_t> out_strides(const AttentionShape& a) {
  return {a.T * a.out_width(), a.HS, a.out_width(), 1};
}
std::vector<int64_t> stats_dims(const AttentionShape& a) {
  return {a.B, a.q_heads, a.T, 1};
}
std::vector<int64_t> stats_strides(const AttentionShape& a) {
  return {a.q_heads * a.T, a.T, 1, 1};
}
std::vector<int64_t> bias_dims(const AttentionShape& a) {
  return {1, a.q_heads, a.T, a.T};
}
std::vector<int64_t> bias_strides(const AttentionShape& a) {
  const int64_t row = alibi_row_stride(a.T);
  return {a.q_heads * a.T * row, a.T * row, row, 1};
}

std::shared_ptr<fe::graph::Graph> new_graph() {
  auto graph = std::make_shared<fe::graph::Graph>();
  graph->set_io_data_type(fe::DataType_t::BFLOAT16)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  return graph;
}

std::shared_ptr<fe::graph::Tensor_attributes> input(fe::graph::Graph& graph, const char* name,
                                                    Uid uid, std::vector<int64_t> dims,
                                                    std::vector<int64_t> strides,
                                                    fe::DataType_t type) {
  return graph.tensor(fe::graph::Tensor_attributes()
                          .set_name(name)
                          .set_uid(uid)
                          .set_dim(std::move(dims))
                          .set_stride(std::move(strides))
                          .set_data_type(type));
}

// The bias is bf16, the io dtype cuDNN's samples and PyTorch's cuDNN path give it (f32 is not
// tried: it could not be run here). Rounding moves a score by at most 2^-9 |bias|: nothing for
// power-of-two slopes up to distance 256, and elsewhere the keys it moves most are those the
// bias already damps most (at bias -5: a 1% error in a weight e^-5 of the diagonal's).
std::shared_ptr<fe::graph::Tensor_attributes> bias_input(fe::graph::Graph& graph,
                                                         const AttentionShape& a) {
  return input(graph, "Bias", kBias, bias_dims(a), bias_strides(a), fe::DataType_t::BFLOAT16);
}

std::shared_ptr<fe::graph::Graph> build_forward(const AttentionShape& a) {
  auto graph = new_graph();
  const auto bf16 = fe::DataType_t::BFLOAT16;
  auto q = input(*graph, "Q", kQ, q_dims(a), qkv_strides(a), bf16);
  auto k = input(*graph, "K", kK, kv_dims(a), qkv_strides(a), bf16);
  auto v = input(*graph, "V", kV, kv_dims(a), qkv_strides(a), bf16);
  // Causal: query i sees keys j <= i (diagonal band right bound 0, aligned top-left).
  auto options = fe::graph::SDPA_attributes()
                     .set_name("attention_forward")
                     .set_generate_stats(true)
                     .set_attn_scale(1.0f / std::sqrt(static_cast<float>(a.HS)))
                     .set_diagonal_alignment(fe::DiagonalAlignment_t::TOP_LEFT)
                     .set_diagonal_band_right_bound(0);
  if (a.alibi()) options.set_bias(bias_input(*graph, a));
  auto [o, stats] = graph->sdpa(q, k, v, options);
  o->set_output(true).set_uid(kO).set_dim(q_dims(a)).set_stride(out_strides(a));
  stats->set_output(true)
      .set_uid(kStats)
      .set_data_type(fe::DataType_t::FLOAT)
      .set_dim(stats_dims(a))
      .set_stride(stats_strides(a));
  return graph;
}

std::shared_ptr<fe::graph::Graph> build_backward(const AttentionShape& a) {
  auto graph = new_graph();
  const auto bf16 = fe::DataType_t::BFLOAT16;
  auto q = input(*graph, "Q", kQ, q_dims(a), qkv_strides(a), bf16);
  auto k = input(*graph, "K", kK, kv_dims(a), qkv_strides(a), bf16);
  auto v = input(*graph, "V", kV, kv_dims(a), qkv_strides(a), bf16);
  auto o = input(*graph, "O", kO, q_dims(a), out_strides(a), bf16);
  auto d_o = input(*graph, "dO", kDO, q_dims(a), out_strides(a), bf16);
  auto stats =
      input(*graph, "Stats", kStats, stats_dims(a), stats_strides(a), fe::DataType_t::FLOAT);
  auto options = fe::graph::SDPA_backward_attributes()
                     .set_name("attention_backward")
                     .set_attn_scale(1.0f / std::sqrt(static_cast<float>(a.HS)))
                     .set_diagonal_alignment(fe::DiagonalAlignment_t::TOP_LEFT)
                     .set_diagonal_band_right_bound(0);
  // The bias is a constant: it is needed to recompute the probabilities, its gradient is not.
  if (a.alibi()) options.set_bias(bias_input(*graph, a));
  auto [dq, dk, dv] = graph->sdpa_backward(q, k, v, o, d_o, stats, options);
  dq->set_output(true).set_uid(kDQ).set_dim(q_dims(a)).set_stride(qkv_strides(a));
  dk->set_output(true).set_uid(kDK).set_dim(kv_dims(a)).set_stride(qkv_strides(a));
  dv->set_output(true).set_uid(kDV).set_dim(kv_dims(a)).set_stride(qkv_strides(a));
  return graph;
}

AttentionGraphCache& cache_of(CudaState& s) {
  if (!s.attention_graphs) s.attention_graphs = new AttentionGraphCache();
  return *s.attention_graphs;
}

// The cached graph for this shape, built (and its workspace reserved) on first use, i.e. in
// the first step; later steps only look it up.
fe::graph::Graph& graph_for(CudaState& s, const AttentionShape& a, bool backward) {
  const AttentionKey key{a.B, a.T, a.q_heads, a.kv_heads, a.HS, a.alibi(), backward};
  auto& slot = cache_of(s).graphs[key];
  if (!slot) {
    auto graph = backward ? build_backward(a) : build_forward(a);
    TS_CHECK_CUDNN_FE(graph->build(s.cudnn, {fe::HeurMode_t::A}));
    int64_t workspace = 0;
    TS_CHECK_CUDNN_FE(graph->get_workspace_size(workspace));
    s.cudnn_workspace_reserve(static_cast<size_t>(workspace));
    slot = std::move(graph);
  }
  return *slot;
}

// One head's (T, row_stride) slice of the bias: -slope (t - s) on and below the diagonal. The
// causal mask removes s > t whatever the bias holds there; it and the padding get 0.
__global__ void alibi_bias_kernel(__nv_bfloat16* bias, float slope, int64_t T, int64_t row_stride) {
  const int64_t n = T * row_stride;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = idx / row_stride, s = idx - t * row_stride;
    const float value = s <= t ? -slope * static_cast<float>(t - s) : 0.0f;
    bias[idx] = __float2bfloat16_rn(value);
  }
}

// The ALiBi bias of these heads at this length, filled on the stream the first time it is
// asked for (the first step; later steps only look it up). (1, Hq, T, T) bf16 costs
// 2 Hq T^2 bytes, once per process, shared by every layer and by forward and backward.
void* alibi_bias_for(CudaState& s, const AttentionShape& a) {
  const AlibiKey key{a.q_heads, a.T, a.alibi_first_head, a.alibi_heads};
  auto& slot = cache_of(s).alibi_biases[key];
  if (!slot) {
    const int64_t row = alibi_row_stride(a.T), per_head = a.T * row;
    void* p = nullptr;
    TS_CHECK_CUDA(
        cudaMalloc(&p, static_cast<size_t>(a.q_heads * per_head) * sizeof(__nv_bfloat16)));
    DeviceBuffer buffer(p);
    constexpr int kBlock = 256;
    for (int64_t h = 0; h < a.q_heads; ++h) {
      // ops::alibi_slope in double, as the CPU twin takes it, used in the compute type.
      const float slope =
          static_cast<float>(ops::alibi_slope(a.alibi_first_head + h, a.alibi_heads));
      alibi_bias_kernel<<<grid_size(s, per_head, kBlock), kBlock, 0, s.stream>>>(
          static_cast<__nv_bfloat16*>(p) + h * per_head, slope, a.T, row);
      check_launch();
    }
    slot = std::move(buffer);
  }
  return slot.get();
}

AttentionShape check_shapes(const Tensor& qkv, const Tensor& out, const Tensor& aux,
                            const ops::AttentionHeads& heads, const char* op) {
  const std::string name(op);
  check_dtype(qkv, DType::bf16, (name + " qkv").c_str());
  check_dtype(out, DType::bf16, (name + " out").c_str());
  check_dtype(aux, DType::f32, (name + " aux (softmax statistics)").c_str());
  TS_ASSERT(heads.q_heads > 0 && heads.kv_heads > 0 && heads.q_heads % heads.kv_heads == 0,
            name + ": q_heads=" + std::to_string(heads.q_heads) +
                " must be a positive multiple of kv_heads=" + std::to_string(heads.kv_heads));
  TS_ASSERT(qkv.shape.rank == 3 && qkv.dim(2) == heads.width(),
            name + ": qkv must be (B, T, (q_heads + 2 kv_heads) * head_size) = (B, T, " +
                std::to_string(heads.width()) + "), got " + qkv.shape.str());
  const AttentionShape a{qkv.dim(0),      qkv.dim(1),        heads.q_heads,         heads.kv_heads,
                         heads.head_size, heads.alibi_heads, heads.alibi_first_head};
  TS_ASSERT(out.numel() == a.B * a.T * a.out_width(),
            name + ": out " + out.shape.str() + " should hold B*T*q_heads*head_size elements");
  TS_ASSERT(aux.numel() == a.B * a.q_heads * a.T,
            name + ": aux " + aux.shape.str() + " should be (B, q_heads, T) = (" +
                std::to_string(a.B) + ", " + std::to_string(a.q_heads) + ", " +
                std::to_string(a.T) + ")");
  TS_ASSERT(a.alibi_heads == 0 ||
                (a.alibi_first_head >= 0 && a.alibi_first_head + a.q_heads <= a.alibi_heads),
            name + ": ALiBi heads [" + std::to_string(a.alibi_first_head) + ", " +
                std::to_string(a.alibi_first_head + a.q_heads) + ") fall outside the model's " +
                std::to_string(a.alibi_heads));
  // cuDNN's flash kernels need 16-byte aligned rows of each head.
  TS_ASSERT(a.HS % 8 == 0, name + ": head size " + std::to_string(a.HS) +
                               " must be a multiple of 8 for cuDNN flash attention");
  return a;
}

}  // namespace

void attention_forward(Device& dev, Tensor out, Tensor aux, Tensor qkv,
                       const ops::AttentionHeads& heads) {
  CudaState& s = state_of(dev);
  const AttentionShape a = check_shapes(qkv, out, aux, heads, "attention_forward");
  if (a.B == 0 || a.T == 0) return;
  fe::graph::Graph& graph = graph_for(s, a, /*backward=*/false);
  auto* base = qkv.ptr<__nv_bfloat16>();
  std::unordered_map<int64_t, void*> pack = {{kQ, base},
                                             {kK, base + a.q_heads * a.HS},
                                             {kV, base + (a.q_heads + a.kv_heads) * a.HS},
                                             {kO, out.data},
                                             {kStats, aux.data}};
  if (a.alibi()) pack[kBias] = alibi_bias_for(s, a);
  TS_CHECK_CUDNN_FE(graph.execute(s.cudnn, pack, s.cudnn_workspace));
}

void attention_backward(Device& dev, Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor aux,
                        const ops::AttentionHeads& heads) {
  CudaState& s = state_of(dev);
  const AttentionShape a = check_shapes(qkv, out, aux, heads, "attention_backward");
  check_dtype(dqkv, DType::bf16, "attention_backward dqkv");
  check_dtype(dout, DType::bf16, "attention_backward dout");
  TS_ASSERT(dqkv.numel() == qkv.numel(), "attention_backward: dqkv and qkv differ in size");
  TS_ASSERT(dout.numel() == out.numel(), "attention_backward: dout and out differ in size");
  if (a.B == 0 || a.T == 0) return;
  fe::graph::Graph& graph = graph_for(s, a, /*backward=*/true);
  auto* base = qkv.ptr<__nv_bfloat16>();
  auto* dbase = dqkv.ptr<__nv_bfloat16>();
  const int64_t k_offset = a.q_heads * a.HS, v_offset = (a.q_heads + a.kv_heads) * a.HS;
  std::unordered_map<int64_t, void*> pack = {
      {kQ, base},     {kK, base + k_offset},   {kV, base + v_offset},
      {kO, out.data}, {kDO, dout.data},        {kStats, aux.data},
      {kDQ, dbase},   {kDK, dbase + k_offset}, {kDV, dbase + v_offset}};
  if (a.alibi()) pack[kBias] = alibi_bias_for(s, a);
  TS_CHECK_CUDNN_FE(graph.execute(s.cudnn, pack, s.cudnn_workspace));
}

}  // namespace tessera::cuda
