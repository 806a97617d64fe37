// GPT-2 as Hugging Face's GPT2LMHeadModel: tensor names, the Conv1D orientation ([in, out], the
// transpose of tessera's [out, in]), the unpadded vocabulary, and config.json.
#include <nlohmann/json.hpp>
#include <string>

#include "checkpoints/hf/adapter.h"
#include "checkpoints/hf/config_file.h"
#include "runtime/error.h"

namespace tessera {
namespace {

HfTensorMap gpt2_tensor_map(const ModelConfig& m, const std::string& n) {
  // wte and lm_head: only the model's real vocabulary rows.
  if (n == "wte") return {n, {{"transformer.wte.weight", 0, m.vocab_size}}};
  if (n == "lm_head.weight") return {n, {{"lm_head.weight", 0, m.vocab_size}}};
  if (n == "wpe") return {n, {{"transformer.wpe.weight"}}};
  if (n == "ln_f.weight" || n == "ln_f.bias") return {n, {{"transformer." + n}}};
  // Conv1D weights are stored transposed.
  static const struct {
    const char* ours;
    const char* theirs;
    HfTransform transform;
  } kBlock[] = {
      {"ln_1.weight", "ln_1.weight", HfTransform::none},
      {"ln_1.bias", "ln_1.bias", HfTransform::none},
      {"attn.qkv.weight", "attn.c_attn.weight", HfTransform::transpose},
      {"attn.qkv.bias", "attn.c_attn.bias", HfTransform::none},
      {"attn.proj.weight", "attn.c_proj.weight", HfTransform::transpose},
      {"attn.proj.bias", "attn.c_proj.bias", HfTransform::none},
      {"ln_2.weight", "ln_2.weight", HfTransform::none},
      {"ln_2.bias", "ln_2.bias", HfTransform::none},
      {"mlp.fc.weight", "mlp.c_fc.weight", HfTransform::transpose},
      {"mlp.fc.bias", "mlp.c_fc.bias", HfTransform::none},
      {"mlp.proj.weight", "mlp.c_proj.weight", HfTransform::transpose},
      {"mlp.proj.bias", "mlp.c_proj.bias", HfTransform::none},
  };
  if (n.rfind("h.", 0) == 0) {
    const size_t dot = n.find('.', 2);
    const std::string layer = n.substr(0, dot + 1), rest = n.substr(dot + 1);
    for (const auto& b : kBlock)
      if (rest == b.ours) return {n, {{"transformer." + layer + b.theirs, 0, -1, b.transform}}};
  }
  TS_ASSERT(false, "no Hugging Face name for parameter " + n);
  return {};
}

std::string gpt2_config_json(const ModelConfig& m, int64_t eod_id) {
  nlohmann::ordered_json j;
  j["architectures"] = {"GPT2LMHeadModel"};
  j["model_type"] = "gpt2";
  j["vocab_size"] = m.vocab_size;
  j["n_positions"] = m.seq_len;
  j["n_ctx"] = m.seq_len;
  j["n_embd"] = m.d_model;
  j["n_layer"] = m.n_layer;
  j["n_head"] = m.n_head;
  j["n_inner"] = m.ff() == 4 * m.d_model ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(m.ff());
  j["activation_function"] = "gelu_new";  // GELU, tanh approximation
  j["layer_norm_epsilon"] = m.norm_eps;
  j["resid_pdrop"] = 0.0;
  j["embd_pdrop"] = 0.0;
  j["attn_pdrop"] = 0.0;
  j["initializer_range"] = 0.02;
  j["scale_attn_weights"] = true;
  j["scale_attn_by_inverse_layer_idx"] = false;
  j["reorder_and_upcast_attn"] = false;
  return hf_config_file_text(j, m.tie_embeddings, eod_id);
}

std::string gpt2_config_summary(const ModelConfig& m) {
  return "gpt2: n_layer " + std::to_string(m.n_layer) + ", n_embd " + std::to_string(m.d_model) +
         ", n_head " + std::to_string(m.n_head) + ", n_inner " + std::to_string(m.ff()) +
         ", n_positions " + std::to_string(m.seq_len) + ", vocab_size " +
         std::to_string(m.vocab_size) + ", gelu_new, tie_word_embeddings " +
         (m.tie_embeddings ? "true" : "false");
}

ModelConfig gpt2_read_config(const std::string& path, const ModelConfig& base) {
  const nlohmann::json j = hf_config_file_read(path);
  auto bad = [&](const std::string& why) { throw UserError(path + ": " + why); };
  auto integer = [&](const char* key, const char* fallback = nullptr) -> int64_t {
    const char* k = j.contains(key) || !fallback ? key : fallback;
    if (!j.contains(k)) bad(std::string("missing key ") + key);
    if (!j[k].is_number_integer() || j[k].get<int64_t>() <= 0) bad(std::string(k) + " must be a positive integer");
    return j[k].get<int64_t>();
  };
  auto flag = [&](const char* key, bool dflt) {
    if (!j.contains(key) || j[key].is_null()) return dflt;
    if (!j[key].is_boolean()) bad(std::string(key) + " must be true or false");
    return j[key].get<bool>();
  };
  ModelConfig m = base;
  m.family = "gpt2";
  m.n_layer = integer("n_layer");
  m.d_model = integer("n_embd");
  m.n_head = integer("n_head");
  m.n_kv_head = 0;
  m.vocab_size = integer("vocab_size");
  m.seq_len = integer("n_positions", "n_ctx");
  m.d_ff = 0;
  if (j.contains("n_inner") && !j["n_inner"].is_null()) {
    const int64_t f = integer("n_inner");
    m.d_ff = f == 4 * m.d_model ? 0 : f;
  }
  if (m.d_model % m.n_head != 0) bad("n_embd is not divisible by n_head");
  const std::string act = j.value("activation_function", std::string("gelu_new"));
  if (act != "gelu_new" && act != "gelu_pytorch_tanh" && act != "gelu_fast")
    bad("activation_function \"" + act +
        "\" is not supported (tessera's MLP uses GELU's tanh approximation: gelu_new)");
  if (j.contains("layer_norm_epsilon")) {
    if (!j["layer_norm_epsilon"].is_number()) bad("layer_norm_epsilon must be a number");
    m.norm_eps = j["layer_norm_epsilon"].get<double>();
  } else {
    m.norm_eps = 1e-5;
  }
  m.tie_embeddings = flag("tie_word_embeddings", true);
  if (!flag("scale_attn_weights", true)) bad("scale_attn_weights = false is not supported");
  if (flag("scale_attn_by_inverse_layer_idx", false))
    bad("scale_attn_by_inverse_layer_idx = true is not supported");
  return m;
}

}  // namespace

const HfAdapter& hf_gpt2_adapter() {
  static const HfAdapter adapter{
      .family = "gpt2",
      .model_type = "gpt2",
      .architecture = "GPT2LMHeadModel",
      .display_name = "GPT-2",
      .base_model_prefix = "transformer.",  // GPT2Model and the original OpenAI checkpoints
      .buffer_suffixes = {".attn.bias", ".attn.masked_bias"},  // the causal-mask buffers
      .config_json = gpt2_config_json,
      .config_summary = gpt2_config_summary,
      .read_config = gpt2_read_config,
      .tensor_map = gpt2_tensor_map,
  };
  return adapter;
}

}  // namespace tessera
