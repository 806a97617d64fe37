// LLaMA as Hugging Face's LlamaForCausalLM: tessera's fused attn.qkv ([q; k; v] rows) and
// SwiGLU mlp.fc ([gate; up] rows) split into q/k/v_proj and gate/up_proj, the unpadded
// vocabulary, and config.json. HF Linear weights are [out, in] like tessera's: no transposes.
// Only what LlamaForCausalLM computes exactly is written or read; anything else is refused.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "checkpoints/hf/adapter.h"
#include "checkpoints/hf/config_file.h"
#include "runtime/error.h"

namespace tessera {
namespace {

HfTensorMap llama_tensor_map(const ModelConfig& m, const std::string& n) {
  // wte and lm_head: only the model's real vocabulary rows.
  if (n == "wte") return {n, {{"model.embed_tokens.weight", 0, m.vocab_size}}};
  if (n == "lm_head.weight") return {n, {{"lm_head.weight", 0, m.vocab_size}}};
  if (n == "ln_f.weight") return {n, {{"model.norm.weight"}}};
  if (n.rfind("h.", 0) == 0) {
    const size_t dot = n.find('.', 2);
    const std::string rest = n.substr(dot + 1);
    const std::string pre = "model.layers." + n.substr(2, dot - 2) + ".";
    const std::string kind = rest.ends_with(".bias") ? "bias" : "weight";
    const int64_t q = m.n_head * m.head_size(), kv = m.kv_heads() * m.head_size(), F = m.ff();
    if (rest == "ln_1.weight") return {n, {{pre + "input_layernorm.weight"}}};
    if (rest == "ln_2.weight") return {n, {{pre + "post_attention_layernorm.weight"}}};
    if (rest == "attn.qkv." + kind)  // rows [q (H D); k (K D); v (K D)]
      return {n,
              {{pre + "self_attn.q_proj." + kind, 0, q},
               {pre + "self_attn.k_proj." + kind, q, q + kv},
               {pre + "self_attn.v_proj." + kind, q + kv, q + 2 * kv}}};
    if (rest == "attn.proj." + kind) return {n, {{pre + "self_attn.o_proj." + kind}}};
    if (rest == "mlp.fc." + kind)  // rows [gate (F); up (F)]
      return {n, {{pre + "mlp.gate_proj." + kind, 0, F}, {pre + "mlp.up_proj." + kind, F, 2 * F}}};
    if (rest == "mlp.proj." + kind) return {n, {{pre + "mlp.down_proj." + kind}}};
  }
  TS_ASSERT(false, "no Hugging Face name for parameter " + n);
  return {};
}

// Why LlamaForCausalLM cannot compute model `m` ("" when it can). HF's attention_bias puts a
// bias on q, k, v and o_proj, mlp_bias on gate, up and down_proj: together they are tessera's
// bias = true; tessera's qkv_bias alone (q, k, v only) has no LLaMA counterpart.
std::string llama_unexpressible(const ModelConfig& m) {
  if (m.norm != "rmsnorm") return "model.norm = \"" + m.norm + "\" (LLaMA uses rmsnorm)";
  if (m.position != "rope") return "model.position = \"" + m.position + "\" (LLaMA uses rope)";
  if (m.rope_fraction != 1.0) return "model.rope_fraction != 1 (LlamaForCausalLM rotates whole heads)";
  if (m.activation != "swiglu") return "model.activation = \"" + m.activation + "\" (LLaMA uses swiglu)";
  if (m.residual != "sequential") return "model.residual = \"" + m.residual + "\" (LLaMA is sequential)";
  if (m.embedding_norm) return "model.embedding_norm = true (LLaMA has none)";
  if (!m.bias && m.qkv_bias)
    return "model.qkv_bias = true without model.bias (LLaMA's attention_bias also biases o_proj)";
  return "";
}

std::string llama_config_json(const ModelConfig& m, int64_t eod_id) {
  if (const std::string why = llama_unexpressible(m); !why.empty())
    throw UserError("export: this llama model is not a LlamaForCausalLM: " + why);
  nlohmann::ordered_json j;
  j["architectures"] = {"LlamaForCausalLM"};
  j["model_type"] = "llama";
  j["vocab_size"] = m.vocab_size;
  j["hidden_size"] = m.d_model;
  j["intermediate_size"] = m.ff();
  j["num_hidden_layers"] = m.n_layer;
  j["num_attention_heads"] = m.n_head;
  j["num_key_value_heads"] = m.kv_heads();
  j["head_dim"] = m.head_size();
  j["max_position_embeddings"] = m.seq_len;
  j["hidden_act"] = "silu";
  j["rms_norm_eps"] = m.norm_eps;
  j["rope_theta"] = m.rope_theta;
  j["rope_scaling"] = nullptr;
  j["attention_bias"] = m.bias;
  j["mlp_bias"] = m.bias;
  j["attention_dropout"] = 0.0;
  j["initializer_range"] = 0.02;
  j["pretraining_tp"] = 1;
  return hf_config_file_text(j, m.tie_embeddings, eod_id);
}

std::string llama_config_summary(const ModelConfig& m) {
  char theta[32];
  std::snprintf(theta, sizeof theta, "%g", m.rope_theta);
  return "llama: num_hidden_layers " + std::to_string(m.n_layer) + ", hidden_size " +
         std::to_string(m.d_model) + ", num_attention_heads " + std::to_string(m.n_head) +
         ", num_key_value_heads " + std::to_string(m.kv_heads()) + ", intermediate_size " +
         std::to_string(m.ff()) + ", max_position_embeddings " + std::to_string(m.seq_len) +
         ", vocab_size " + std::to_string(m.vocab_size) + ", silu, rope_theta " + theta +
         ", tie_word_embeddings " + (m.tie_embeddings ? "true" : "false");
}

ModelConfig llama_read_config(const std::string& path, const ModelConfig& base) {
  const HfConfigFields f(path);
  ModelConfig m = base;
  model_apply_family(m, "llama");
  m.n_layer = f.integer("num_hidden_layers");
  m.d_model = f.integer("hidden_size");
  m.n_head = f.integer("num_attention_heads");
  m.vocab_size = f.integer("vocab_size");
  m.seq_len = f.integer("max_position_embeddings");
  if (m.d_model % m.n_head != 0) f.bad("hidden_size is not divisible by num_attention_heads");
  const int64_t kv = f.present("num_key_value_heads") ? f.integer("num_key_value_heads") : m.n_head;
  if (m.n_head % kv != 0) f.bad("num_key_value_heads does not divide num_attention_heads");
  m.n_kv_head = kv == m.n_head ? 0 : kv;
  if (f.present("head_dim") && f.integer("head_dim") != m.head_size())
    f.bad("head_dim = " + std::to_string(f.integer("head_dim")) +
          " is not supported (tessera's head size is hidden_size / num_attention_heads = " +
          std::to_string(m.head_size()) + ")");
  m.d_ff = 0;
  if (const int64_t ff = f.integer("intermediate_size"); ff != m.ff()) m.d_ff = ff;
  const std::string act = f.string("hidden_act", "silu");
  if (act != "silu" && act != "swish")
    f.bad("hidden_act \"" + act + "\" is not supported (tessera's SwiGLU gates with silu)");
  m.norm_eps = f.number("rms_norm_eps", 1e-6);
  const HfRope rope = f.rope({"rope_theta"}, {"partial_rotary_factor"}, {10000.0, 1.0});
  m.rope_theta = rope.theta;
  if (rope.fraction != 1.0)
    f.bad("partial_rotary_factor = " + std::to_string(rope.fraction) +
          " is not supported (LlamaForCausalLM rotates whole heads)");
  if (f.present("sliding_window"))
    f.bad("sliding_window is not supported (tessera's attention is full causal: sliding_window must be null)");
  const bool attention_bias = f.flag("attention_bias", false), mlp_bias = f.flag("mlp_bias", false);
  if (attention_bias != mlp_bias)
    f.bad(std::string(attention_bias ? "attention_bias" : "mlp_bias") + " = true with " +
          (attention_bias ? "mlp_bias" : "attention_bias") +
          " = false is not supported (tessera biases all linear layers or none)");
  m.bias = attention_bias;
  m.tie_embeddings = f.flag("tie_word_embeddings", false);
  return m;
}

}  // namespace

const HfAdapter& hf_llama_adapter() {
  static const HfAdapter adapter{
      .family = "llama",
      .model_type = "llama",
      .architecture = "LlamaForCausalLM",
      .display_name = "LLaMA",
      .base_model_prefix = "model.",  // LlamaModel
      .buffer_suffixes = {".rotary_emb.inv_freq"},  // saved by older transformers
      .config_json = llama_config_json,
      .config_summary = llama_config_summary,
      .read_config = llama_read_config,
      .tensor_map = llama_tensor_map,
  };
  return adapter;
}

}  // namespace tessera
