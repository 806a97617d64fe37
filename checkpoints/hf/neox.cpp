// GPT-NeoX (Pythia) as Hugging Face's GPTNeoXForCausalLM: the fused query_key_value whose rows
// are grouped by head ([q_h; k_h; v_h] per head, where tessera's attn.qkv is [q; k; v]), the
// untied embed_out, partial rotary embeddings (rotary_pct) and the parallel residual
// (use_parallel_residual). Linear weights are [out, in] like tessera's.
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "checkpoints/hf/adapter.h"
#include "checkpoints/hf/config_file.h"
#include "runtime/error.h"

namespace tessera {
namespace {

HfTensorMap neox_tensor_map(const ModelConfig& m, const std::string& n) {
  if (n == "wte") return {n, {{"gpt_neox.embed_in.weight", 0, m.vocab_size}}};
  if (n == "lm_head.weight") return {n, {{"embed_out.weight", 0, m.vocab_size}}};
  if (n == "ln_f.weight" || n == "ln_f.bias")
    return {n, {{"gpt_neox.final_layer_norm." + n.substr(5)}}};
  if (n.rfind("h.", 0) == 0) {
    const size_t dot = n.find('.', 2);
    const std::string rest = n.substr(dot + 1);
    const std::string pre = "gpt_neox.layers." + n.substr(2, dot - 2) + ".";
    const std::string kind = rest.ends_with(".bias") ? "bias" : "weight";
    if (rest == "ln_1." + kind) return {n, {{pre + "input_layernorm." + kind}}};
    if (rest == "ln_2." + kind) return {n, {{pre + "post_attention_layernorm." + kind}}};
    if (rest == "attn.qkv." + kind)
      return {n, {{pre + "attention.query_key_value." + kind, 0, -1, HfTransform::per_head_qkv,
                   m.n_head, m.head_size()}}};
    if (rest == "attn.proj." + kind) return {n, {{pre + "attention.dense." + kind}}};
    if (rest == "mlp.fc." + kind) return {n, {{pre + "mlp.dense_h_to_4h." + kind}}};
    if (rest == "mlp.proj." + kind) return {n, {{pre + "mlp.dense_4h_to_h." + kind}}};
  }
  TS_ASSERT(false, "no Hugging Face name for parameter " + n);
  return {};
}

// Why GPTNeoXForCausalLM cannot compute model `m` ("" when it can).
std::string neox_unexpressible(const ModelConfig& m) {
  if (m.norm != "layernorm") return "model.norm = \"" + m.norm + "\" (GPT-NeoX uses layernorm)";
  if (m.position != "rope") return "model.position = \"" + m.position + "\" (GPT-NeoX uses rope)";
  if (m.activation == "swiglu") return "model.activation = \"swiglu\" (GPT-NeoX's MLP has two matrices)";
  if (m.kv_heads() != m.n_head) return "model.n_kv_head < n_head (GPT-NeoX has no grouped-query attention)";
  if (m.embedding_norm) return "model.embedding_norm = true (GPT-NeoX has none)";
  if (!m.bias) return "model.bias = false (GPT-NeoX's MLP and LayerNorms always have biases)";
  return "";
}

// rotary_pct for model m: transformers rotates int(head_size * rotary_pct) dimensions, so the
// nearest double to dims / head_size is nudged up until that product floors to tessera's count.
double neox_rotary_pct(const ModelConfig& m) {
  const double hs = static_cast<double>(m.head_size());
  double pct = static_cast<double>(m.rotary_dims()) / hs;
  while (static_cast<int64_t>(std::floor(hs * pct)) < m.rotary_dims()) pct = std::nextafter(pct, 2.0);
  return pct;
}

// hidden_act of tessera activation `a`.
const char* neox_act(const std::string& a) { return a == "gelu" ? "gelu" : "gelu_pytorch_tanh"; }

std::string neox_config_json(const ModelConfig& m, int64_t eod_id) {
  if (const std::string why = neox_unexpressible(m); !why.empty())
    throw UserError("export: this neox model is not a GPTNeoXForCausalLM: " + why);
  nlohmann::ordered_json j;
  j["architectures"] = {"GPTNeoXForCausalLM"};
  j["model_type"] = "gpt_neox";
  j["vocab_size"] = m.vocab_size;
  j["hidden_size"] = m.d_model;
  j["intermediate_size"] = m.ff();
  j["num_hidden_layers"] = m.n_layer;
  j["num_attention_heads"] = m.n_head;
  j["max_position_embeddings"] = m.seq_len;
  j["hidden_act"] = neox_act(m.activation);
  j["layer_norm_eps"] = m.norm_eps;
  j["rotary_pct"] = neox_rotary_pct(m);  // read by transformers 4 and 5 alike
  j["rotary_emb_base"] = m.rope_theta;
  j["rope_scaling"] = nullptr;
  j["use_parallel_residual"] = m.residual == "parallel";
  j["attention_bias"] = true;
  j["attention_dropout"] = 0.0;
  j["hidden_dropout"] = 0.0;
  j["initializer_range"] = 0.02;
  return hf_config_file_text(j, m.tie_embeddings, eod_id);
}

std::string neox_config_summary(const ModelConfig& m) {
  char rope[96];
  std::snprintf(rope, sizeof rope, "rotary_pct %g, rotary_emb_base %g",
                neox_rotary_pct(m), m.rope_theta);
  return "gpt_neox: num_hidden_layers " + std::to_string(m.n_layer) + ", hidden_size " +
         std::to_string(m.d_model) + ", num_attention_heads " + std::to_string(m.n_head) +
         ", intermediate_size " + std::to_string(m.ff()) + ", max_position_embeddings " +
         std::to_string(m.seq_len) + ", vocab_size " + std::to_string(m.vocab_size) + ", " +
         neox_act(m.activation) + ", " + rope + ", use_parallel_residual " +
         (m.residual == "parallel" ? "true" : "false") + ", tie_word_embeddings " +
         (m.tie_embeddings ? "true" : "false");
}

ModelConfig neox_read_config(const std::string& path, const ModelConfig& base) {
  const HfConfigFields f(path);
  ModelConfig m = base;
  model_apply_family(m, "neox");
  m.n_layer = f.integer("num_hidden_layers");
  m.d_model = f.integer("hidden_size");
  m.n_head = f.integer("num_attention_heads");
  m.n_kv_head = 0;
  m.vocab_size = f.integer("vocab_size");
  m.seq_len = f.integer("max_position_embeddings");
  if (m.d_model % m.n_head != 0) f.bad("hidden_size is not divisible by num_attention_heads");
  m.d_ff = 0;
  if (const int64_t ff = f.integer("intermediate_size"); ff != m.ff()) m.d_ff = ff;
  const std::string act = f.string("hidden_act", "gelu");
  if (act == "gelu") m.activation = "gelu";
  else if (act == "gelu_new" || act == "gelu_pytorch_tanh") m.activation = "gelu_tanh";
  else f.bad("hidden_act \"" + act + "\" is not supported (tessera has gelu, exact, and gelu_new / gelu_pytorch_tanh)");
  m.norm_eps = f.number("layer_norm_eps", 1e-5);
  const HfRope rope = f.rope({"rotary_emb_base", "rope_theta"}, {"rotary_pct", "partial_rotary_factor"},
                             {10000.0, 0.25});
  if (rope.fraction > 1.0) f.bad("rotary_pct must be at most 1");
  m.rope_theta = rope.theta;
  // transformers rotates int(head_size * rotary_pct) dimensions: the same count for tessera.
  const int64_t dims = static_cast<int64_t>(std::floor(static_cast<double>(m.head_size()) * rope.fraction));
  if (dims < 2 || dims % 2 != 0)
    f.bad("rotary_pct = " + std::to_string(rope.fraction) + " rotates " + std::to_string(dims) + " of " +
          std::to_string(m.head_size()) + " dimensions per head (tessera needs an even number, at least 2)");
  m.rope_fraction = static_cast<double>(dims) / static_cast<double>(m.head_size());
  m.residual = f.flag("use_parallel_residual", true) ? "parallel" : "sequential";
  if (!f.flag("attention_bias", true))
    f.bad("attention_bias = false is not supported (tessera biases all linear layers or none, and "
          "GPT-NeoX's MLP has biases)");
  m.bias = true;
  m.tie_embeddings = f.flag("tie_word_embeddings", false);
  return m;
}

}  // namespace

const HfAdapter& hf_neox_adapter() {
  static const HfAdapter adapter{
      .family = "neox",
      .model_type = "gpt_neox",
      .architecture = "GPTNeoXForCausalLM",
      .display_name = "GPT-NeoX",
      .base_model_prefix = "gpt_neox.",  // GPTNeoXModel
      // Saved by older transformers: the rotary frequencies and the causal-mask buffers.
      .buffer_suffixes = {".rotary_emb.inv_freq", ".attention.bias", ".attention.masked_bias"},
      .config_json = neox_config_json,
      .config_summary = neox_config_summary,
      .read_config = neox_read_config,
      .tensor_map = neox_tensor_map,
  };
  return adapter;
}

}  // namespace tessera
