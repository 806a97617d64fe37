// GPT-2 family, as the layers one pipeline stage owns (the whole model when pp = 1).
// Forward and backward are written out explicitly; backward mirrors forward block by block.
#pragma once
#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/params.h"
#include "runtime/arena.h"
#include "runtime/device.h"

namespace tessera {

enum class Recompute { none, full };

struct StageSpec {
  int64_t first_layer = 0;
  int64_t n_layers = 0;
  bool has_embedding = true;  // first stage: token + position embedding
  bool has_head = true;       // last stage: final LayerNorm, LM head, loss
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

class GptStage {
 public:
  GptStage(const ModelConfig& cfg, StageSpec spec, ParamRegistry& registry);
  // Resolves parameter views after registry.layout(); call once.
  void bind(ParamRegistry& registry);
  // Carves activation and scratch buffers for `shape` (measuring or real arena).
  void layout_activations(Arena& acts, const RunShape& shape);

  // Training forward of one micro-batch held in `slot`. First stage reads tokens (B,T) i32,
  // others `input` (B,T,C). The last stage computes per-token losses (B*T) and, when
  // dloss != 0, leaves dlogits in place of the logits for backward.
  void forward(Device& dev, int slot, Tensor tokens, Tensor input, Tensor targets, Tensor losses,
               const DropoutKey& key, bool training, float dloss);
  // Backward of the micro-batch in `slot`. Non-last stages take dout (B,T,C); non-first stages
  // return the gradient of their input (valid until the next backward).
  Tensor backward(Device& dev, int slot, Tensor tokens, Tensor dout, const DropoutKey& key);

  Tensor output(int slot) const;  // (B,T,C) hidden state leaving this stage
  Tensor logits(int slot) const;  // (B,T,Vp), last stage only
  const StageSpec& spec() const { return spec_; }

 private:
  struct BlockParams {
    Param *ln1_w, *ln1_b, *qkv_w, *qkv_b, *proj_w, *proj_b;
    Param *ln2_w, *ln2_b, *fc_w, *fc_b, *fcp_w, *fcp_b;
  };
  struct BlockActs {
    Tensor ln1, ln1_mean, ln1_rstd;  // (B,T,C) (B,T) (B,T)
    Tensor qkv;                      // (B,T,3C)
    Tensor atty;                     // (B,T,C) attention output before the projection
    Tensor att_aux;                  // backend-specific (see ops::attention_aux_shape)
    Tensor res2;                     // (B,T,C) residual after attention
    Tensor ln2, ln2_mean, ln2_rstd;  // (B,T,C) (B,T) (B,T)
    Tensor fch, fch_gelu;            // (B,T,F) before / after GELU
  };
  struct SlotActs {
    std::vector<Tensor> residual;  // n_layers + 1 of (B,T,C): block inputs, then stage output
    std::vector<BlockActs> blocks; // n_layers, or 1 shared when recomputing
    Tensor lnf, lnf_mean, lnf_rstd, logits;  // last stage: (B,T,C) (B,T) (B,T) (B,T,Vp)
  };
  struct Scratch {
    Tensor proj;               // (B,T,C) projection output before dropout
    Tensor dres, dc, dc2;      // (B,T,C) residual gradient and two temporaries
    Tensor dff;                // (B,T,F)
    Tensor d3c;                // (B,T,3C)
    Tensor dlnf;               // (B,T,C)
  };

  void block_forward(Device& dev, int64_t l, const BlockActs& a, Tensor x, Tensor out,
                     const DropoutKey& key, bool training);
  void block_backward(Device& dev, int64_t l, const BlockActs& a, Tensor x, Tensor dres,
                      const DropoutKey& key);
  const BlockActs& block_acts(int slot, int64_t l) const;
  uint64_t dropout_stream(const DropoutKey& key, int64_t layer, int site) const;

  ModelConfig cfg_;
  StageSpec spec_;
  RunShape shape_;
  Param *wte_ = nullptr, *wpe_ = nullptr, *lnf_w_ = nullptr, *lnf_b_ = nullptr,
        *lm_head_ = nullptr;
  std::vector<BlockParams> blocks_;
  std::vector<SlotActs> slots_;
  Scratch scratch_;
};

// Registers and returns the whole model as one stage (pp = 1).
StageSpec stage_spec_whole(const ModelConfig& cfg);

}  // namespace tessera
