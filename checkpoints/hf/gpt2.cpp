#include "launch/hf_gpt2.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "runtime/error.h"

namespace tessera {

HfTensorName hf_gpt2_name(const std::string& n) {
  if (n == "wte") return {"transformer.wte.weight", false, true};
  if (n == "wpe") return {"transformer.wpe.weight", false, false};
  if (n == "lm_head.weight") return {"lm_head.weight", false, true};
  if (n == "ln_f.weight" || n == "ln_f.bias") return {"transformer." + n, false, false};
  static const struct {
    const char* ours;
    const char* theirs;
    bool transpose;
  } kBlock[] = {
      {"ln_1.weight", "ln_1.weight", false},           {"ln_1.bias", "ln_1.bias", false},
      {"attn.qkv.weight", "attn.c_attn.weight", true}, {"attn.qkv.bias", "attn.c_attn.bias", false},
      {"attn.proj.weight", "attn.c_proj.weight", true}, {"attn.proj.bias", "attn.c_proj.bias", false},
      {"ln_2.weight", "ln_2.weight", false},           {"ln_2.bias", "ln_2.bias", false},
      {"mlp.fc.weight", "mlp.c_fc.weight", true},       {"mlp.fc.bias", "mlp.c_fc.bias", false},
      {"mlp.proj.weight", "mlp.c_proj.weight", true},   {"mlp.proj.bias", "mlp.c_proj.bias", false},
  };
  if (n.rfind("h.", 0) == 0) {
    const size_t dot = n.find('.', 2);
    const std::string layer = n.substr(0, dot + 1), rest = n.substr(dot + 1);
    for (const auto& b : kBlock)
      if (rest == b.ours) return {"transformer." + layer + b.theirs, b.transpose, false};
  }
  TS_ASSERT(false, "no Hugging Face name for parameter " + n);
  return {};
}

std::vector<int64_t> hf_gpt2_shape(const Param& p, const HfTensorName& hf, int64_t vocab_size) {
  const Shape& s = p.global_shape;
  if (hf.transpose) return {s[1], s[0]};
  if (hf.vocab_rows) return {vocab_size, s[1]};
  std::vector<int64_t> out(s.dims.begin(), s.dims.begin() + s.rank);
  return out;
}

std::vector<float> hf_gpt2_from_tessera(const Param& p, const HfTensorName& hf, int64_t vocab_size,
                                        const std::vector<float>& ours) {
  const Shape& s = p.global_shape;
  if (hf.vocab_rows) return std::vector<float>(ours.begin(), ours.begin() + vocab_size * s[1]);
  if (!hf.transpose) return ours;
  const int64_t R = s[0], C = s[1];
  std::vector<float> out(ours.size());
  for (int64_t i = 0; i < R; ++i)
    for (int64_t j = 0; j < C; ++j) out[j * R + i] = ours[i * C + j];
  return out;
}

std::vector<double> hf_gpt2_to_tessera(const Param& p, const HfTensorName& hf, int64_t vocab_size,
                                       const std::vector<double>& theirs) {
  const Shape& s = p.global_shape;
  std::vector<double> out(static_cast<size_t>(s.numel()), 0.0);
  if (hf.vocab_rows) {
    std::copy(theirs.begin(), theirs.begin() + vocab_size * s[1], out.begin());
  } else if (hf.transpose) {
    const int64_t R = s[0], C = s[1];
    for (int64_t i = 0; i < R; ++i)
      for (int64_t j = 0; j < C; ++j) out[i * C + j] = theirs[j * R + i];
  } else {
    out = theirs;
  }
  return out;
}

std::string hf_gpt2_config_json(const ModelConfig& m, int64_t eod_id) {
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
  j["tie_word_embeddings"] = m.tie_embeddings;
  if (eod_id >= 0) {
    j["bos_token_id"] = eod_id;
    j["eos_token_id"] = eod_id;
  }
  j["torch_dtype"] = "float32";
  j["use_cache"] = true;
  return j.dump(2) + "\n";
}

ModelConfig hf_gpt2_config_read(const std::string& path, const ModelConfig& base) {
  std::ifstream in(path);
  if (!in) throw UserError(path + ": cannot read (an exported model directory holds config.json)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    throw UserError(path + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  if (!j.is_object()) throw UserError(path + ": expected a JSON object");
  auto bad = [&](const std::string& why) { throw UserError(path + ": " + why); };
  const std::string type = j.value("model_type", std::string());
  if (type != "gpt2")
    bad("model_type \"" + type + "\" is not supported (tessera imports GPT-2: model_type \"gpt2\")");
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

}  // namespace tessera
