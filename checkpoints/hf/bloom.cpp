// BLOOM as Hugging Face's BloomForCausalLM: the fused query_key_value whose rows are grouped by
// head ([q_h; k_h; v_h] per head, where tessera's attn.qkv is [q; k; v]), the LayerNorm after
// the word embedding, ALiBi (no position table: the context length is not in config.json),
// GELU's tanh approximation; embeddings tied unless tie_word_embeddings says otherwise. Linear weights are
// [out, in] like tessera's.
#include <nlohmann/json.hpp>
#include <string>

#include "checkpoints/hf/adapter.h"
#include "checkpoints/hf/config_file.h"
#include "runtime/error.h"

namespace tessera {
namespace {

HfTensorMap bloom_tensor_map(const ModelConfig& m, const std::string& n) {
  if (n == "wte") return {n, {{"transformer.word_embeddings.weight", 0, m.vocab_size}}};
  if (n == "lm_head.weight") return {n, {{"lm_head.weight", 0, m.vocab_size}}};
  if (n == "emb_ln.weight" || n == "emb_ln.bias")
    return {n, {{"transformer.word_embeddings_layernorm." + n.substr(7)}}};
  if (n == "ln_f.weight" || n == "ln_f.bias") return {n, {{"transformer." + n}}};
  if (n.rfind("h.", 0) == 0) {
    const size_t dot = n.find('.', 2);
    const std::string rest = n.substr(dot + 1);
    const std::string pre = "transformer.h." + n.substr(2, dot - 2) + ".";
    const std::string kind = rest.ends_with(".bias") ? "bias" : "weight";
    if (rest == "ln_1." + kind) return {n, {{pre + "input_layernorm." + kind}}};
    if (rest == "ln_2." + kind) return {n, {{pre + "post_attention_layernorm." + kind}}};
    if (rest == "attn.qkv." + kind)
      return {n, {{pre + "self_attention.query_key_value." + kind, 0, -1, HfTransform::per_head_qkv,
                   m.n_head, m.head_size()}}};
    if (rest == "attn.proj." + kind) return {n, {{pre + "self_attention.dense." + kind}}};
    if (rest == "mlp.fc." + kind) return {n, {{pre + "mlp.dense_h_to_4h." + kind}}};
    if (rest == "mlp.proj." + kind) return {n, {{pre + "mlp.dense_4h_to_h." + kind}}};
  }
  TS_ASSERT(false, "no Hugging Face name for parameter " + n);
  return {};
}

// Why BloomForCausalLM cannot compute model `m` ("" when it can).
std::string bloom_unexpressible(const ModelConfig& m) {
  if (m.norm != "layernorm") return "model.norm = \"" + m.norm + "\" (BLOOM uses layernorm)";
  if (m.position != "alibi") return "model.position = \"" + m.position + "\" (BLOOM uses alibi)";
  if (m.activation != "gelu_tanh")
    return "model.activation = \"" + m.activation + "\" (BLOOM uses gelu_tanh)";
  if (m.residual != "sequential") return "model.residual = \"" + m.residual + "\" (BLOOM is sequential)";
  if (m.kv_heads() != m.n_head) return "model.n_kv_head < n_head (BLOOM has no grouped-query attention)";
  if (!m.embedding_norm) return "model.embedding_norm = false (BLOOM normalizes the word embedding)";
  if (!m.bias) return "model.bias = false (BLOOM's linear layers have biases)";
  if (m.ff() != 4 * m.d_model)
    return "model.d_ff = " + std::to_string(m.ff()) + " (BLOOM's MLP is 4 * d_model = " +
           std::to_string(4 * m.d_model) + " wide)";
  return "";
}

std::string bloom_config_json(const ModelConfig& m, int64_t eod_id) {
  if (const std::string why = bloom_unexpressible(m); !why.empty())
    throw UserError("export: this bloom model is not a BloomForCausalLM: " + why);
  nlohmann::ordered_json j;
  j["architectures"] = {"BloomForCausalLM"};
  j["model_type"] = "bloom";
  j["vocab_size"] = m.vocab_size;
  j["hidden_size"] = m.d_model;
  j["n_layer"] = m.n_layer;
  j["n_head"] = m.n_head;
  j["layer_norm_epsilon"] = m.norm_eps;
  j["apply_residual_connection_post_layernorm"] = false;
  j["attention_dropout"] = 0.0;
  j["hidden_dropout"] = 0.0;
  j["initializer_range"] = 0.02;
  j["pretraining_tp"] = 1;
  j["slow_but_exact"] = false;
  j["seq_length"] = m.seq_len;  // informative: ALiBi has no position limit
  return hf_config_file_text(j, m.tie_embeddings, eod_id);
}

std::string bloom_config_summary(const ModelConfig& m) {
  return "bloom: n_layer " + std::to_string(m.n_layer) + ", hidden_size " + std::to_string(m.d_model) +
         ", n_head " + std::to_string(m.n_head) + ", vocab_size " + std::to_string(m.vocab_size) +
         ", alibi, tie_word_embeddings " + (m.tie_embeddings ? "true" : "false");
}

ModelConfig bloom_read_config(const std::string& path, const ModelConfig& base) {
  const HfConfigFields f(path);
  ModelConfig m = base;
  model_apply_family(m, "bloom");
  m.n_layer = f.integer("n_layer", f.integer("num_hidden_layers", 0));
  if (m.n_layer == 0) f.bad("missing key n_layer");
  m.n_head = f.integer("n_head", f.integer("num_attention_heads", 0));
  if (m.n_head == 0) f.bad("missing key n_head");
  m.d_model = f.integer("hidden_size", f.integer("n_embed", 0));
  if (m.d_model == 0) f.bad("missing key hidden_size");
  m.n_kv_head = 0;
  m.d_ff = 0;
  m.vocab_size = f.integer("vocab_size");
  // ALiBi needs no position table: the context length is --config's unless config.json says.
  m.seq_len = f.integer("seq_length", m.seq_len);
  if (m.d_model % m.n_head != 0) f.bad("hidden_size is not divisible by n_head");
  m.norm_eps = f.number("layer_norm_epsilon", 1e-5);
  if (f.flag("apply_residual_connection_post_layernorm", false))
    f.bad("apply_residual_connection_post_layernorm = true is not supported (tessera's residual "
          "stream carries the block input, not its normalized form)");
  m.tie_embeddings = f.flag("tie_word_embeddings", true);
  return m;
}

}  // namespace

const HfAdapter& hf_bloom_adapter() {
  static const HfAdapter adapter{
      .family = "bloom",
      .model_type = "bloom",
      .architecture = "BloomForCausalLM",
      .display_name = "BLOOM",
      .base_model_prefix = "transformer.",  // BloomModel (bigscience's published checkpoints)
      .buffer_suffixes = {},
      .config_json = bloom_config_json,
      .config_summary = bloom_config_summary,
      .read_config = bloom_read_config,
      .tensor_map = bloom_tensor_map,
  };
  return adapter;
}

}  // namespace tessera
