#include "model/config.h"

#include <cmath>
#include <cstdio>

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
  m.init = "normal", m.init_std = 0.02;
  if (family == "gpt2") {
    m.init = "gpt2";
    m.norm = "layernorm", m.bias = true, m.position = "learned", m.activation = "gelu_tanh";
    m.tie_embeddings = true;
  } else if (family == "llama") {
    m.norm = "rmsnorm", m.bias = false, m.position = "rope", m.activation = "swiglu";
    m.tie_embeddings = false;
  } else if (family == "neox") {
    m.norm = "layernorm", m.bias = true, m.position = "rope", m.rope_fraction = 0.25;
    m.activation = "gelu", m.residual = "parallel", m.tie_embeddings = false;
    m.init = "neox";  // as Pythia was trained
  } else if (family == "bloom") {
    m.norm = "layernorm", m.bias = true, m.position = "alibi", m.activation = "gelu_tanh";
    m.embedding_norm = true, m.tie_embeddings = true;
  } else {
    return false;
  }
  return true;
}

InitStds model_init_stds(const ModelConfig& m) {
  const double L = static_cast<double>(m.n_layer), d = static_cast<double>(m.d_model);
  if (m.init == "neox") return {std::sqrt(2.0 / (5.0 * d)), 2.0 / (L * std::sqrt(d))};
  const double sigma = m.init == "normal" ? m.init_std : 0.02;
  return {sigma, sigma / std::sqrt(2.0 * L)};
}

BlockComponents model_components(const ModelConfig& m) {
  BlockComponents c;
  c.norm = m.norm == "rmsnorm" ? Norm::rmsnorm : Norm::layernorm;
  c.position = m.position == "rope" ? Position::rope : m.position == "alibi" ? Position::alibi : Position::learned;
  c.activation = m.activation == "swiglu" ? Activation::swiglu
                 : m.activation == "gelu" ? Activation::gelu
                                          : Activation::gelu_tanh;
  c.residual = m.residual == "parallel" ? Residual::parallel : Residual::sequential;
  return c;
}

std::string model_describe(const ModelConfig& m) {
  char buf[512];
  std::string heads = std::to_string(m.n_head) + " heads of " + std::to_string(m.head_size());
  if (m.kv_heads() != m.n_head) heads += " (" + std::to_string(m.kv_heads()) + " key/value heads)";
  std::string position = m.position;
  if (m.position == "rope") {
    std::snprintf(buf, sizeof buf, "rope (theta %g, %lld of %lld dims per head)", m.rope_theta,
                  static_cast<long long>(m.rotary_dims()), static_cast<long long>(m.head_size()));
    position = buf;
  }
  std::string extras = m.bias ? "biases" : m.qkv_bias ? "qkv bias only" : "no biases";
  if (m.residual == "parallel") extras += ", parallel residual";
  if (m.embedding_norm) extras += ", embedding norm";
  extras += m.tie_embeddings ? ", tied embeddings" : ", untied embeddings";
  std::snprintf(buf, sizeof buf,
                "%s: %lld layers, d_model %lld, %s, d_ff %lld (%s), %s, %s positions, %s, vocab %lld "
                "(padded %lld), context %lld, %.2fM parameters",
                m.family.c_str(), static_cast<long long>(m.n_layer), static_cast<long long>(m.d_model),
                heads.c_str(), static_cast<long long>(m.ff()), m.activation.c_str(), m.norm.c_str(),
                position.c_str(), extras.c_str(), static_cast<long long>(m.vocab_size),
                static_cast<long long>(m.padded_vocab()), static_cast<long long>(m.seq_len),
                static_cast<double>(m.num_parameters()) / 1e6);
  return buf;
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
