// Causal multi-head attention through cuDNN's fused flash attention (cudnn-frontend graph API:
// sdpa / sdpa_backward). No kernels of our own: this file builds, caches and runs graphs.
//
// Layout. qkv (B, T, 3C) packs [q | k | v] per token, head h at columns [h*HS, (h+1)*HS) of
// each part. cuDNN takes (B, NH, T, HS) tensors with arbitrary strides, so Q, K and V are
// strided views of that one buffer (base pointers qkv, qkv + C, qkv + 2C; strides
// {T*3C, HS, 3C, 1}) and the output is written straight into (B, T, C) with strides
// {T*C, HS, C, 1}: no permute copies in either direction. dqkv mirrors qkv.
//
// aux holds the softmax statistics (the row log-sum-exp of the scaled, masked scores),
// (B, NH, T) f32, which is all the backward pass needs to recompute the probabilities.
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
enum Uid : int64_t { kQ = 1, kK, kV, kO, kStats, kDO, kDQ, kDK, kDV };

struct AttentionKey {
  int64_t B, T, NH, HS;
  bool backward;
  bool operator<(const AttentionKey& o) const {
    return std::tie(B, T, NH, HS, backward) < std::tie(o.B, o.T, o.NH, o.HS, o.backward);
  }
};

}  // namespace

struct AttentionGraphCache {
  std::map<AttentionKey, std::shared_ptr<fe::graph::Graph>> graphs;
};

void attention_cache_destroy(AttentionGraphCache* cache) {
  delete cache;
}

namespace {

struct AttentionShape {
  int64_t B, T, C, NH, HS;
};

std::vector<int64_t> bhsd_dims(const AttentionShape& a) {
  return {a.B, a.NH, a.T, a.HS};
}
// Views into the packed (B, T, 3C) buffer.
std::vector<int64_t> qkv_strides(const AttentionShape& a) {
  return {a.T * 3 * a.C, a.HS, 3 * a.C, 1};
}
// Views into a (B, T, C) buffer.
std::vector<int64_t> out_strides(const AttentionShape& a) {
  return {a.T * a.C, a.HS, a.C, 1};
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

std::vector<int64_t> stats_dims(const AttentionShape& a) {
  return {a.B, a.NH, a.T, 1};
}
std::vector<int64_t> stats_strides(const AttentionShape& a) {
  return {a.NH * a.T, a.T, 1, 1};
}

std::shared_ptr<fe::graph::Graph> build_forward(const AttentionShape& a) {
  auto graph = new_graph();
  const auto bf16 = fe::DataType_t::BFLOAT16;
  auto q = input(*graph, "Q", kQ, bhsd_dims(a), qkv_strides(a), bf16);
  auto k = input(*graph, "K", kK, bhsd_dims(a), qkv_strides(a), bf16);
  auto v = input(*graph, "V", kV, bhsd_dims(a), qkv_strides(a), bf16);
  // Causal: query i sees keys j <= i (diagonal band right bound 0, aligned top-left).
  auto options = fe::graph::SDPA_attributes()
                     .set_name("attention_forward")
                     .set_generate_stats(true)
                     .set_attn_scale(1.0f / std::sqrt(static_cast<float>(a.HS)))
                     .set_diagonal_alignment(fe::DiagonalAlignment_t::TOP_LEFT)
                     .set_diagonal_band_right_bound(0);
  auto [o, stats] = graph->sdpa(q, k, v, options);
  o->set_output(true).set_uid(kO).set_dim(bhsd_dims(a)).set_stride(out_strides(a));
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
  auto q = input(*graph, "Q", kQ, bhsd_dims(a), qkv_strides(a), bf16);
  auto k = input(*graph, "K", kK, bhsd_dims(a), qkv_strides(a), bf16);
  auto v = input(*graph, "V", kV, bhsd_dims(a), qkv_strides(a), bf16);
  auto o = input(*graph, "O", kO, bhsd_dims(a), out_strides(a), bf16);
  auto d_o = input(*graph, "dO", kDO, bhsd_dims(a), out_strides(a), bf16);
  auto stats =
      input(*graph, "Stats", kStats, stats_dims(a), stats_strides(a), fe::DataType_t::FLOAT);
  auto options = fe::graph::SDPA_backward_attributes()
                     .set_name("attention_backward")
                     .set_attn_scale(1.0f / std::sqrt(static_cast<float>(a.HS)))
                     .set_diagonal_alignment(fe::DiagonalAlignment_t::TOP_LEFT)
                     .set_diagonal_band_right_bound(0);
  auto [dq, dk, dv] = graph->sdpa_backward(q, k, v, o, d_o, stats, options);
  dq->set_output(true).set_uid(kDQ).set_dim(bhsd_dims(a)).set_stride(qkv_strides(a));
  dk->set_output(true).set_uid(kDK).set_dim(bhsd_dims(a)).set_stride(qkv_strides(a));
  dv->set_output(true).set_uid(kDV).set_dim(bhsd_dims(a)).set_stride(qkv_strides(a));
  return graph;
}

// The cached graph for this shape, built (and its workspace reserved) on first use, i.e. in
// the first step; later steps only look it up.
fe::graph::Graph& graph_for(CudaState& s, const AttentionShape& a, bool backward) {
  if (!s.attention_graphs) s.attention_graphs = new AttentionGraphCache();
  const AttentionKey key{a.B, a.T, a.NH, a.HS, backward};
  auto& slot = s.attention_graphs->graphs[key];
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

AttentionShape check_shapes(const Tensor& qkv, const Tensor& out, const Tensor& aux, int64_t n_head,
                            const char* op) {
  const std::string name(op);
  check_dtype(qkv, DType::bf16, (name + " qkv").c_str());
  check_dtype(out, DType::bf16, (name + " out").c_str());
  check_dtype(aux, DType::f32, (name + " aux (softmax statistics)").c_str());
  TS_ASSERT(qkv.shape.rank == 3 && qkv.dim(2) % 3 == 0,
            name + ": qkv must be (B, T, 3C), got " + qkv.shape.str());
  AttentionShape a{qkv.dim(0), qkv.dim(1), qkv.dim(2) / 3, n_head, 0};
  TS_ASSERT(n_head > 0 && a.C % n_head == 0,
            name + ": C=" + std::to_string(a.C) +
                " is not divisible by n_head=" + std::to_string(n_head));
  a.HS = a.C / n_head;
  TS_ASSERT(out.numel() == a.B * a.T * a.C,
            name + ": out " + out.shape.str() + " should hold B*T*C elements");
  TS_ASSERT(aux.numel() == a.B * a.NH * a.T,
            name + ": aux " + aux.shape.str() + " should be (B, NH, T) = (" + std::to_string(a.B) +
                ", " + std::to_string(a.NH) + ", " + std::to_string(a.T) + ")");
  // cuDNN's flash kernels need 16-byte aligned rows of each head.
  TS_ASSERT(a.HS % 8 == 0, name + ": head size " + std::to_string(a.HS) +
                               " must be a multiple of 8 for cuDNN flash attention");
  return a;
}

}  // namespace

void attention_forward(Device& dev, Tensor out, Tensor aux, Tensor qkv, int64_t n_head) {
  CudaState& s = state_of(dev);
  const AttentionShape a = check_shapes(qkv, out, aux, n_head, "attention_forward");
  if (a.B == 0 || a.T == 0) return;
  fe::graph::Graph& graph = graph_for(s, a, /*backward=*/false);
  auto* base = qkv.ptr<__nv_bfloat16>();
  std::unordered_map<int64_t, void*> pack = {
      {kQ, base}, {kK, base + a.C}, {kV, base + 2 * a.C}, {kO, out.data}, {kStats, aux.data}};
  TS_CHECK_CUDNN_FE(graph.execute(s.cudnn, pack, s.cudnn_workspace));
}

void attention_backward(Device& dev, Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor aux,
                        int64_t n_head) {
  CudaState& s = state_of(dev);
  const AttentionShape a = check_shapes(qkv, out, aux, n_head, "attention_backward");
  check_dtype(dqkv, DType::bf16, "attention_backward dqkv");
  check_dtype(dout, DType::bf16, "attention_backward dout");
  TS_ASSERT(dqkv.numel() == qkv.numel(), "attention_backward: dqkv and qkv differ in size");
  TS_ASSERT(dout.numel() == out.numel(), "attention_backward: dout and out differ in size");
  if (a.B == 0 || a.T == 0) return;
  fe::graph::Graph& graph = graph_for(s, a, /*backward=*/true);
  auto* base = qkv.ptr<__nv_bfloat16>();
  auto* dbase = dqkv.ptr<__nv_bfloat16>();
  std::unordered_map<int64_t, void*> pack = {
      {kQ, base},     {kK, base + a.C},   {kV, base + 2 * a.C},
      {kO, out.data}, {kDO, dout.data},   {kStats, aux.data},
      {kDQ, dbase},   {kDK, dbase + a.C}, {kDV, dbase + 2 * a.C}};
  TS_CHECK_CUDNN_FE(graph.execute(s.cudnn, pack, s.cudnn_workspace));
}

}  // namespace tessera::cuda
