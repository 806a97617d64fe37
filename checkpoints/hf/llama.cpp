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
  const nlohmann::json j = hf_config_file_read(path);
  auto bad = [&](const std::string& why) { throw UserError(path + ": " + why); };
  auto present = [&](const char* key) { return j.contains(key) && !j[key].is_null(); };
  auto integer = [&](const char* key) -> int64_t {
    if (!present(key)) bad(std::string("missing key ") + key);
    if (!j[key].is_number_integer() || j[key].get<int64_t>() <= 0)
      bad(std::string(key) + " must be a positive integer");
    return j[key].get<int64_t>();
  };
  auto number = [&](const char* key, double dflt) {
    if (!present(key)) return dflt;
    if (!j[key].is_number() || !(j[key].get<double>() > 0)) bad(std::string(key) + " must be a positive number");
    return j[key].get<double>();
  };
  auto flag = [&](const char* key, bool dflt) {
    if (!present(key)) return dflt;
    if (!j[key].is_boolean()) bad(std::string(key) + " must be true or false");
    return j[key].get<bool>();
  };
  ModelConfig m = base;
  model_apply_family(m, "llama");
  m.n_layer = integer("num_hidden_layers");
  m.d_model = integer("hidden_size");
  m.n_head = integer("num_attention_heads");
  m.vocab_size = integer("vocab_size");
  m.seq_len = integer("max_position_embeddings");
  if (m.d_model % m.n_head != 0) bad("hidden_size is not divisible by num_attention_heads");
  const int64_t kv = present("num_key_value_heads") ? integer("num_key_value_heads") : m.n_head;
  if (m.n_head % kv != 0) bad("num_key_value_heads does not divide num_attention_heads");
  m.n_kv_head = kv == m.n_head ? 0 : kv;
  if (present("head_dim") && integer("head_dim") != m.head_size())
    bad("head_dim = " + std::to_string(j["head_dim"].get<int64_t>()) +
        " is not supported (tessera's head size is hidden_size / num_attention_heads = " +
        std::to_string(m.head_size()) + ")");
  m.d_ff = 0;
  if (const int64_t f = integer("intermediate_size"); f != m.ff()) m.d_ff = f;
  if (present("hidden_act") && !j["hidden_act"].is_string()) bad("hidden_act must be a string");
  const std::string act = present("hidden_act") ? j["hidden_act"].get<std::string>() : "silu";
  if (act != "silu" && act != "swish")
    bad("hidden_act \"" + act + "\" is not supported (tessera's SwiGLU gates with silu)");
  m.norm_eps = number("rms_norm_eps", 1e-6);
  // rope_scaling (transformers 4) and rope_parameters (5) may only name the default rope.
  m.rope_theta = number("rope_theta", 10000.0);
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    if (!present(key)) continue;
    const nlohmann::json& r = j[key];
    if (!r.is_object()) bad(std::string(key) + " must be null or an object");
    const char* type_key = r.contains("rope_type") ? "rope_type" : "type";
    if (r.contains(type_key) && !r[type_key].is_string())
      bad(std::string(key) + "." + type_key + " must be a string");
    const std::string type = r.value(type_key, std::string("default"));
    if (type != "default")
      bad(std::string(key) + " with rope_type \"" + type +
          "\" is not supported (tessera's rope is unscaled: " + key + " must be null)");
    if (r.contains("rope_theta")) {
      if (!r["rope_theta"].is_number() || !(r["rope_theta"].get<double>() > 0))
        bad(std::string(key) + ".rope_theta must be a positive number");
      m.rope_theta = r["rope_theta"].get<double>();
    }
    if (r.contains("partial_rotary_factor") &&
        !(r["partial_rotary_factor"].is_number() && r["partial_rotary_factor"].get<double>() == 1.0))
      bad(std::string(key) + ".partial_rotary_factor != 1 is not supported (LlamaForCausalLM rotates whole heads)");
  }
  if (present("partial_rotary_factor") && number("partial_rotary_factor", 1.0) != 1.0)
    bad("partial_rotary_factor != 1 is not supported (LlamaForCausalLM rotates whole heads)");
  if (present("sliding_window"))
    bad("sliding_window is not supported (tessera's attention is full causal: sliding_window must be null)");
  const bool attention_bias = flag("attention_bias", false), mlp_bias = flag("mlp_bias", false);
  if (attention_bias != mlp_bias)
    bad(std::string(attention_bias ? "attention_bias" : "mlp_bias") + " = true with " +
        (attention_bias ? "mlp_bias" : "attention_bias") +
        " = false is not supported (tessera biases all linear layers or none)");
  m.bias = attention_bias;
  m.tie_embeddings = flag("tie_word_embeddings", false);
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
