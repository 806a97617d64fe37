#include "model/config.h"

#include <cmath>

#include "model/stage.h"
#include "model/params.h"

namespace tessera {

int64_t ModelConfig::ff() const {
  if (d_ff) return d_ff;
  // SwiGLU's three matrices at 8/3 d hold as many weights as GELU's two at 4 d.
  if (activation == "swiglu") return (8 * d_model / 3 + 63) / 64 * 64;
  return 4 * d_model;
}

int64_t ModelConfig::rotary_dims() const {
  if (position != "rope") return 0;
  return static_cast<int64_t>(std::llround(rope_fraction * static_cast<double>(head_size())));
}

bool model_apply_family(ModelConfig& m, const std::string& family) {
  m.family = family;
  m.norm_eps = 1e-5;
  m.qkv_bias = false;
  m.rope_theta = 10000.0;
  m.rope_fraction = 1.0;
  m.embedding_norm = false;
  m.residual = "sequential";
  if (family == "gpt2") {
    m.norm = "layernorm", m.bias = true, m.position = "learned", m.activation = "gelu_tanh";
    m.tie_embeddings = true;
  } else if (family == "llama") {
    m.norm = "rmsnorm", m.bias = false, m.position = "rope", m.activation = "swiglu";
    m.tie_embeddings = false;
  } else if (family == "neox") {
    m.norm = "layernorm", m.bias = true, m.position = "rope", m.rope_fraction = 0.25;
    m.activation = "gelu", m.residual = "parallel", m.tie_embeddings = false;
  } else if (family == "bloom") {
    m.norm = "layernorm", m.bias = true, m.position = "alibi", m.activation = "gelu_tanh";
    m.embedding_norm = true, m.tie_embeddings = true;
  } else {
    return false;
  }
  return true;
}

namespace {

// The whole model's registry (global shapes, no arena): the one source of counts.
ParamRegistry whole_registry(const ModelConfig& m) {
  ParamRegistry reg;
  Stage stage(m, stage_spec_whole(m), TensorSlice{}, reg);
  return reg;
}

// Elements of p without the vocabulary padding rows.
int64_t real_numel(const Param& p) {
  if (p.init_rows < 0) return p.global_shape.numel();
  return p.init_rows * (p.global_shape.numel() / p.global_shape[0]);
}

}  // namespace

int64_t ModelConfig::num_parameters() const {
  int64_t n = 0;
  const ParamRegistry reg = whole_registry(*this);
  for (const Param& p : reg.all()) n += real_numel(p);
  return n;
}

double ModelConfig::flops_per_token() const {
  double n = 0;
  const ParamRegistry reg = whole_registry(*this);
  for (const Param& p : reg.all()) {
    const bool lookup = p.kind == ParamKind::embedding && !(p.name == "wte" && tie_embeddings);
    if (!lookup) n += static_cast<double>(real_numel(p));
  }
  return 6.0 * n + 12.0 * static_cast<double>(n_layer * n_head * head_size() * seq_len);
}

}  // namespace tessera
