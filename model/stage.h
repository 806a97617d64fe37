// The decoder, as the layers one pipeline stage owns (the whole model when pp = 1). One block
// serves every family: the config chooses its components (norm, positions, activation,
// residual, key/value heads, biases), never a family name. Forward and backward are written
// out explicitly; backward mirrors forward block by block.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "model/config.h"
#include "model/params.h"
#include "parallel/comm.h"
#include "parallel/tensor_parallel.h"
#include "runtime/arena.h"
#include "runtime/device.h"
#include "runtime/ops.h"

namespace tessera {

enum class Recompute { none, full };

struct StageSpec {
  int64_t first_layer = 0;
  int64_t n_layers = 0;
  bool has_embedding = true;  // first stage: token (+ position) embedding (+ its norm)
  bool has_head = true;       // last stage: final norm, LM head, loss
};

// Shapes the activation arena is sized for.
struct RunShape {
  int64_t micro_batch = 1;
  int64_t seq_len = 1;
  int slots = 1;  // micro-batches whose activations are alive at once (pipeline in-flight)
  Recompute recompute = Recompute::none;
  DType compute = DType::f32;
  DeviceKind device = DeviceKind::cpu;
};

// Identifies the random dropout masks of one micro-batch: a pure function of the run's seed,
// the step and the global index of the micro-batch's first sample, so masks do not depend on
// the parallel layout.
struct DropoutKey {
  uint64_t seed = 0;
  int64_t step = 0;
  int64_t first_sample = 0;
};

class Stage {
 public:
  Stage(const ModelConfig& cfg, StageSpec spec, TensorSlice tp, ParamRegistry& registry);
  // Resolves parameter views after registry.layout(); call once.
  void bind(ParamRegistry& registry);
  // Carves activation and scratch buffers for `shape` (measuring or real arena).
  void layout_activations(Arena& acts, const RunShape& shape);

  // Training forward of one micro-batch held in `slot`. First stage reads tokens (B,T) i32,
  // others `input` (the stream: (B,T,C), or this rank's (B*T/tp, C) tokens under sequence
  // parallelism; empty when already received into input(slot)). The last stage computes
  // per-token losses (B*T) and, when dloss != 0, leaves dlogits in place of the logits.
  void forward(Device& dev, int slot, Tensor tokens, Tensor input, Tensor targets, Tensor losses,
               const DropoutKey& key, bool training, float dloss);
  // Backward of the micro-batch in `slot`. Non-last stages take dout (B,T,C); non-first stages
  // return the gradient of their input (valid until the next backward). When given,
  // `block_done(layer)` runs as soon as the gradients of block `layer` (global index) are
  // complete for this micro-batch, so their reduction can start while backward goes on.
  Tensor backward(Device& dev, int slot, Tensor tokens, Tensor dout, const DropoutKey& key,
                  const std::function<void(int64_t)>& block_done = {});

  // Incremental decoding for generation (the whole model on one rank, no tensor parallelism):
  // layout_decode carves key/value caches for seq_len positions and one-token buffers; each
  // decode() call runs one token at position `pos` (0, 1, 2, ... since the last reset; earlier
  // positions come from the caches) and returns its logits (1, Vp). O(pos) work per token.
  void layout_decode(Arena& arena, DType dtype);
  Tensor decode(Device& dev, Tensor token, int64_t pos);

  Tensor input(int slot) const;   // stream entering this stage (receive buffer)
  Tensor output(int slot) const;  // stream leaving this stage
  Tensor grad_output() const;     // receive buffer for d(output) (pass it to backward)
  Tensor logits(int slot) const;  // (B,T,Vp/tp), last stage only
  // Stream shape of one micro-batch on this rank: (B,T,C) or (B*T/tp, C).
  Shape stream_shape() const;
  const StageSpec& spec() const { return spec_; }

 private:
  // Optional parameters (biases, LayerNorm's shift) are null when the config has none.
  struct BlockParams {
    Param *ln1_w, *ln1_b, *qkv_w, *qkv_b, *proj_w, *proj_b;
    Param *ln2_w, *ln2_b, *fc_w, *fc_b, *fcp_w, *fcp_b;
  };
  // Shapes: N = B*T tokens, Ns = N/tp under sequence parallelism (else N); Cl = this rank's
  // heads * HS, Wl = (q + 2 kv heads) * HS of this rank, Fl = F/tp, Gl = 2 Fl for SwiGLU's
  // [gate | up] (else Fl), Vl = Vp/tp. "Stream" tensors are (Ns,C); "full" ones (N,C) on every
  // tp rank.
  struct BlockActs {
    Tensor ln1, ln1_mean, ln1_rstd;  // full (B,T,C); (Ns) (Ns); mean empty for RMSNorm
    Tensor qkv;                      // (B,T,Wl), q and k after the rotary embedding
    Tensor atty;                     // (B,T,Cl) attention output before the projection
    Tensor att_aux;                  // backend-specific (see ops::attention_aux_shape)
    Tensor res2;                     // stream: residual after attention (sequential residual)
    Tensor ln2, ln2_mean, ln2_rstd;  // full (B,T,C); (Ns) (Ns)
    Tensor fch, fch_act;             // (B,T,Gl) before / (B,T,Fl) after the activation
  };
  struct SlotActs {
    std::vector<Tensor> residual;  // n_layers + 1 stream tensors: block inputs, then output
    std::vector<BlockActs> blocks; // n_layers, or 1 shared when recomputing
    Tensor emb, emb_mean, emb_rstd;  // first stage with embedding_norm: stream before the norm
    Tensor lnf, lnf_mean, lnf_rstd, logits;  // last stage: full (B,T,C); (Ns) (Ns); (B,T,Vl)
  };
  struct Scratch {
    Tensor ln_s;                     // stream norm output before the sequence gather
    Tensor proj_full, proj_s;        // (N,C) partial projection; its reduced stream part
    Tensor mlp_full;                 // (N,C) the MLP's partial projection (parallel residual)
    Tensor dres;                     // stream: the residual's gradient
    Tensor dbranch_s, dbranch_full;  // a branch output's gradient: stream; gathered (N,C)
    Tensor dnorm_full, dnorm_s;      // a norm output's gradient: partial (N,C); reduced stream
    Tensor dx_s;                     // stream: a norm input's gradient (added to dres)
    Tensor datty;                    // (B,T,Cl)
    Tensor dact, dfch;               // (B,T,Fl) d(activation output); (B,T,Gl) d(fc output)
    Tensor dqkv;                     // (B,T,Wl)
    Tensor xent_max, xent_stats;     // (N), (N,2): vocabulary-parallel loss statistics
  };

  void block_forward(Device& dev, int64_t l, const BlockActs& a, Tensor x, Tensor out,
                     const DropoutKey& key, bool training);
  void block_backward(Device& dev, int64_t l, const BlockActs& a, Tensor x, Tensor dres,
                      const DropoutKey& key);
  const BlockActs& block_acts(int slot, int64_t l) const;
  uint64_t dropout_stream(const DropoutKey& key, int64_t layer, int site) const;
  void dropout(Device& dev, Tensor out, Tensor x, const DropoutKey& key, int64_t layer, int site,
               float p, bool backward);
  void head_loss(Device& dev, SlotActs& s, Tensor targets, Tensor losses, float dloss);
  // The configured norm (LayerNorm or RMSNorm); b is null for RMSNorm.
  void norm_forward(Device& dev, Tensor out, Tensor mean, Tensor rstd, Tensor in, const Param* w,
                    const Param* b);
  void norm_backward(Device& dev, Tensor din, Tensor dout, Tensor in, const Param* w,
                     const Param* b, Tensor mean, Tensor rstd);
  // out_partial (N,C) = the MLP of in (N,C) before the tensor-parallel sum; and its backward
  // from dout (N,C), leaving the partial d(in) in scratch dnorm_full.
  void mlp_forward(Device& dev, const BlockActs& a, const BlockParams& w, Tensor in,
                   Tensor out_partial);
  void mlp_backward(Device& dev, const BlockActs& a, const BlockParams& w, Tensor in, Tensor dout);
  // The same for attention: q, k, v, the rotary embedding, attention, the output projection.
  void attention_forward(Device& dev, const BlockActs& a, const BlockParams& w, Tensor out_partial);
  void attention_backward(Device& dev, const BlockActs& a, const BlockParams& w, Tensor dout);

  struct DecodeState {
    std::vector<Tensor> k, v;         // per layer: (seq_len, kv_heads*HS) caches
    BlockActs a;                      // one token's activations, shared by the layers
    Tensor x, y, proj, mlp;           // (1,1,C): stream in / out, attention and MLP outputs
    Tensor emb, emb_mean, emb_rstd;   // before the embedding norm
    Tensor lnf, lnf_mean, lnf_rstd, logits;  // (1,1,C) ... (1,1,Vp)
  };

  ModelConfig cfg_;
  BlockComponents comp_;  // cfg_'s components, resolved
  StageSpec spec_;
  TensorSlice tp_;
  int64_t heads_ = 0, vocab_rows_ = 0;  // this rank's query heads and vocabulary rows
  ops::AttentionHeads attn_;            // this rank's heads as the attention ops see them
  int64_t stream_rows_ = 0;             // Ns
  RunShape shape_;
  Param *wte_ = nullptr, *wpe_ = nullptr, *emb_ln_w_ = nullptr, *emb_ln_b_ = nullptr,
        *lnf_w_ = nullptr, *lnf_b_ = nullptr, *lm_head_ = nullptr;
  std::vector<BlockParams> blocks_;
  std::vector<SlotActs> slots_;
  Scratch scratch_;
  DecodeState dec_;
};

// The whole model as one stage (pp = 1).
StageSpec stage_spec_whole(const ModelConfig& cfg);
// Model chunk `chunk` of `n_chunks` contiguous chunks (pipeline stages x virtual stages).
StageSpec stage_spec_chunk(const ModelConfig& cfg, int chunk, int n_chunks);

}  // namespace tessera
