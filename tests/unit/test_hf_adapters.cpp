// checkpoints/hf/: the Hugging Face adapters' tables and config.json, without files of weights.
// Every tessera parameter's rows are covered exactly once by HF tensors (but the vocabulary's
// padding), with the HF names; config.json written and read back gives the same model; a
// config.json field that changes the math in a way tessera lacks is refused naming the field.
// tests/e2e/hf_llama.sh and checkpoint_tools.sh hold the round trips through real checkpoints.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "checkpoints/hf/adapter.h"
#include "launch/session.h"
#include "model/config.h"
#include "runtime/error.h"

namespace tessera {
namespace {
namespace fs = std::filesystem;

// A tiny llama: grouped-query (4 heads, 2 key/value heads), byte vocabulary (257, padded to 384).
ModelConfig tiny_llama();

// A tiny Pythia-style NeoX (rotary on 6 of 12 dims, parallel residual) and a BLOOM with a head
// count that is not a power of two.
ModelConfig tiny_neox() {
  ModelConfig m;
  model_apply_family(m, "neox");
  m.n_layer = 2, m.d_model = 36, m.n_head = 3, m.seq_len = 16, m.vocab_size = 257;
  m.rope_fraction = 0.5, m.rope_theta = 20000.0;
  return m;
}
ModelConfig tiny_bloom() {
  ModelConfig m;
  model_apply_family(m, "bloom");
  m.n_layer = 2, m.d_model = 48, m.n_head = 3, m.seq_len = 16, m.vocab_size = 257, m.norm_eps = 1e-5;
  return m;
}

ModelConfig tiny_llama() {
  ModelConfig m;
  model_apply_family(m, "llama");
  m.n_layer = 2, m.d_model = 32, m.n_head = 4, m.n_kv_head = 2, m.seq_len = 16, m.vocab_size = 257;
  m.rope_theta = 500000.0, m.norm_eps = 1e-6;
  return m;
}

// Every field of ModelConfig that config.json describes (not dropout).
void expect_same_model(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(a.family, b.family);
  EXPECT_EQ(a.n_layer, b.n_layer);
  EXPECT_EQ(a.d_model, b.d_model);
  EXPECT_EQ(a.n_head, b.n_head);
  EXPECT_EQ(a.n_kv_head, b.n_kv_head);
  EXPECT_EQ(a.d_ff, b.d_ff);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.seq_len, b.seq_len);
  EXPECT_EQ(a.tie_embeddings, b.tie_embeddings);
  EXPECT_EQ(a.norm, b.norm);
  EXPECT_EQ(a.norm_eps, b.norm_eps);
  EXPECT_EQ(a.bias, b.bias);
  EXPECT_EQ(a.qkv_bias, b.qkv_bias);
  EXPECT_EQ(a.position, b.position);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.rope_fraction, b.rope_fraction);
  EXPECT_EQ(a.activation, b.activation);
  EXPECT_EQ(a.residual, b.residual);
  EXPECT_EQ(a.embedding_norm, b.embedding_norm);
}

// The HF tensors of model m, by name, with their shapes; checks on the way that the pieces of
// each parameter cover its rows in order, exactly once, through its last real row.
std::map<std::string, std::vector<int64_t>> hf_tensors(const HfAdapter& hf, const ModelConfig& m) {
  std::map<std::string, std::vector<int64_t>> out;
  for (const Param& p : session_param_list(m)) {
    const HfTensorMap map = hf.tensor_map(m, p.name);
    EXPECT_EQ(map.tessera_name, p.name);
    const bool vocab = p.name == "wte" || p.name == "lm_head.weight";
    const int64_t rows = vocab ? m.vocab_size : p.global_shape[0];
    int64_t next = 0;
    for (const HfPiece& piece : map.pieces) {
      EXPECT_EQ(piece.row_begin, next) << piece.name << " of " << p.name;
      next = piece.row_end < 0 ? p.global_shape[0] : piece.row_end;
      EXPECT_GT(next, piece.row_begin) << piece.name;
      EXPECT_TRUE(out.emplace(piece.name, hf_piece_shape(p, piece)).second) << piece.name << " twice";
    }
    EXPECT_EQ(next, rows) << p.name << ": rows not covered";
  }
  return out;
}

TEST(HfAdapters, LookupByFamilyAndModelType) {
  ASSERT_NE(hf_adapter_for("llama"), nullptr);
  EXPECT_EQ(hf_adapter_for("llama")->architecture, "LlamaForCausalLM");
  EXPECT_EQ(hf_adapter_for("gpt2")->architecture, "GPT2LMHeadModel");
  EXPECT_EQ(hf_adapter_for("neox")->architecture, "GPTNeoXForCausalLM");
  EXPECT_EQ(hf_adapter_for("bloom")->architecture, "BloomForCausalLM");
  EXPECT_EQ(hf_adapter_for("nope"), nullptr);
}

TEST(HfAdapters, LlamaTensorMapCoversEveryRowWithHfNames) {
  const HfAdapter& hf = hf_llama_adapter();
  const ModelConfig m = tiny_llama();
  const int64_t F = m.ff();
  std::map<std::string, std::vector<int64_t>> want = {
      {"model.embed_tokens.weight", {257, 32}}, {"lm_head.weight", {257, 32}}, {"model.norm.weight", {32}}};
  for (int l = 0; l < 2; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    want[p + "input_layernorm.weight"] = {32};
    want[p + "post_attention_layernorm.weight"] = {32};
    want[p + "self_attn.q_proj.weight"] = {32, 32};  // (H D, C)
    want[p + "self_attn.k_proj.weight"] = {16, 32};  // (K D, C)
    want[p + "self_attn.v_proj.weight"] = {16, 32};
    want[p + "self_attn.o_proj.weight"] = {32, 32};
    want[p + "mlp.gate_proj.weight"] = {F, 32};
    want[p + "mlp.up_proj.weight"] = {F, 32};
    want[p + "mlp.down_proj.weight"] = {32, F};
  }
  EXPECT_EQ(hf_tensors(hf, m), want);

  // attn.qkv's pieces in row order are q, k, v; mlp.fc's gate, up.
  const HfTensorMap qkv = hf.tensor_map(m, "h.1.attn.qkv.weight");
  ASSERT_EQ(qkv.pieces.size(), 3u);
  EXPECT_EQ(qkv.pieces[1].name, "model.layers.1.self_attn.k_proj.weight");
  EXPECT_EQ(qkv.pieces[1].row_begin, 32);
  EXPECT_EQ(qkv.pieces[2].row_end, 64);
  const HfTensorMap fc = hf.tensor_map(m, "h.0.mlp.fc.weight");
  ASSERT_EQ(fc.pieces.size(), 2u);
  EXPECT_EQ(fc.pieces[0].name, "model.layers.0.mlp.gate_proj.weight");
  EXPECT_EQ(fc.pieces[1].row_begin, F);
}

TEST(HfAdapters, LlamaWithBiasesAndTiedEmbeddings) {
  ModelConfig m = tiny_llama();
  m.bias = true, m.tie_embeddings = true, m.n_kv_head = 1;
  const auto t = hf_tensors(hf_llama_adapter(), m);
  EXPECT_EQ(t.count("lm_head.weight"), 0u);
  EXPECT_EQ(t.at("model.layers.0.self_attn.k_proj.bias"), std::vector<int64_t>{8});
  EXPECT_EQ(t.count("model.layers.0.self_attn.o_proj.bias"), 1u);
  EXPECT_EQ(t.count("model.layers.0.mlp.up_proj.bias"), 1u);
  EXPECT_EQ(t.count("model.layers.0.mlp.down_proj.bias"), 1u);
  EXPECT_EQ(t.count("model.layers.0.input_layernorm.bias"), 0u);  // RMSNorm: weight only
}

TEST(HfAdapters, PieceCopiesAreTheRowsOfTheTensor) {
  const ModelConfig m = tiny_llama();
  for (const Param& p : session_param_list(m)) {
    if (p.name != "h.0.attn.qkv.weight") continue;
    std::vector<float> ours(static_cast<size_t>(p.global_shape.numel()));
    for (size_t i = 0; i < ours.size(); ++i) ours[i] = static_cast<float>(i);
    std::vector<double> back(ours.size(), -1.0);
    for (const HfPiece& piece : hf_llama_adapter().tensor_map(m, p.name).pieces) {
      const std::vector<float> theirs = hf_piece_from_tessera(p, piece, ours.data());
      EXPECT_EQ(theirs.front(), static_cast<float>(piece.row_begin * 32)) << piece.name;
      const std::vector<double> wide(theirs.begin(), theirs.end());
      hf_piece_to_tessera(p, piece, wide.data(), back.data());
    }
    for (size_t i = 0; i < ours.size(); ++i) ASSERT_EQ(back[i], ours[i]) << i;
    return;
  }
  FAIL() << "no h.0.attn.qkv.weight";
}

TEST(HfAdapters, NeoxAndBloomTensorMapsCoverEveryRowWithHfNames) {
  const ModelConfig neox = tiny_neox();
  const auto t = hf_tensors(hf_neox_adapter(), neox);
  EXPECT_EQ(t.at("gpt_neox.embed_in.weight"), (std::vector<int64_t>{257, 36}));
  EXPECT_EQ(t.at("embed_out.weight"), (std::vector<int64_t>{257, 36}));
  EXPECT_EQ(t.at("gpt_neox.final_layer_norm.bias"), std::vector<int64_t>{36});
  EXPECT_EQ(t.at("gpt_neox.layers.1.attention.query_key_value.weight"), (std::vector<int64_t>{108, 36}));
  EXPECT_EQ(t.at("gpt_neox.layers.1.attention.query_key_value.bias"), std::vector<int64_t>{108});
  EXPECT_EQ(t.at("gpt_neox.layers.0.mlp.dense_4h_to_h.weight"), (std::vector<int64_t>{36, 144}));
  EXPECT_EQ(t.count("gpt_neox.layers.0.post_attention_layernorm.bias"), 1u);
  EXPECT_EQ(t.size(), 4u + 2 * 12);

  const ModelConfig bloom = tiny_bloom();
  const auto b = hf_tensors(hf_bloom_adapter(), bloom);
  EXPECT_EQ(b.count("lm_head.weight"), 0u);  // tied
  EXPECT_EQ(b.at("transformer.word_embeddings_layernorm.weight"), std::vector<int64_t>{48});
  EXPECT_EQ(b.at("transformer.h.0.self_attention.query_key_value.weight"), (std::vector<int64_t>{144, 48}));
  EXPECT_EQ(b.at("transformer.ln_f.bias"), std::vector<int64_t>{48});
  EXPECT_EQ(b.size(), 5u + 2 * 12);
}

// NeoX and BLOOM store q, k, v interleaved per head: HF row (3 h + part) D + i is tessera's row
// part H D + h D + i, for the weight's rows and the bias's elements alike.
TEST(HfAdapters, PerHeadQkvInterleavesQKVByHead) {
  const ModelConfig m = tiny_neox();
  const int64_t H = 3, D = 12, C = 36;
  int checked = 0;
  for (const Param& p : session_param_list(m)) {
    if (p.name != "h.0.attn.qkv.weight" && p.name != "h.0.attn.qkv.bias") continue;
    const int64_t cols = p.name.ends_with("weight") ? C : 1;
    std::vector<float> ours(static_cast<size_t>(p.global_shape.numel()));
    for (size_t i = 0; i < ours.size(); ++i) ours[i] = static_cast<float>(i);
    const HfTensorMap map = hf_neox_adapter().tensor_map(m, p.name);
    ASSERT_EQ(map.pieces.size(), 1u);
    const std::vector<float> theirs = hf_piece_from_tessera(p, map.pieces[0], ours.data());
    for (int64_t h = 0; h < H; ++h)
      for (int64_t part = 0; part < 3; ++part)
        for (int64_t i = 0; i < D; ++i) {
          const int64_t r = (3 * h + part) * D + i, row = part * H * D + h * D + i;
          ASSERT_EQ(theirs[r * cols], static_cast<float>(row * cols)) << p.name << " row " << r;
        }
    std::vector<float> back(ours.size(), -1.0f);
    hf_piece_to_tessera(p, map.pieces[0], theirs.data(), back.data());
    for (size_t i = 0; i < ours.size(); ++i) ASSERT_EQ(back[i], ours[i]) << p.name << " " << i;
    ++checked;
  }
  EXPECT_EQ(checked, 2);
}

class HfConfigFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "tessera_hf_adapters_" + std::to_string(::getpid());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& text) {
    const std::string path = dir_ + "/config.json";
    std::ofstream(path) << text;
    return path;
  }
  // The message of the UserError that reading config.json `j` gives ("" when none).
  std::string error_of(const nlohmann::json& j) {
    try {
      hf_llama_adapter().read_config(write(j.dump()), ModelConfig{});
    } catch (const UserError& e) {
      return e.what();
    }
    return "";
  }
  std::string dir_;
};

TEST_F(HfConfigFiles, LlamaConfigRoundTrips) {
  ModelConfig gqa = tiny_llama(), biased = tiny_llama(), wide = tiny_llama();
  biased.bias = true, biased.tie_embeddings = true, biased.n_kv_head = 0;
  wide.d_ff = 96;
  for (const ModelConfig& m : {gqa, biased, wide}) {
    const std::string path = write(hf_llama_adapter().config_json(m, 256));
    EXPECT_EQ(&hf_adapter_for_config(path), &hf_llama_adapter());
    ModelConfig base;  // the GPT-2 defaults: read_config must set every component
    base.dropout = 0.25;
    const ModelConfig back = hf_llama_adapter().read_config(path, base);
    expect_same_model(back, m);
    EXPECT_EQ(back.dropout, 0.25);  // not in config.json: kept from base
  }
}

TEST_F(HfConfigFiles, LlamaConfigOfTransformersDefaults) {
  // The fields transformers leaves out take LlamaConfig's defaults.
  const ModelConfig m = hf_llama_adapter().read_config(
      write(R"({"model_type": "llama", "hidden_size": 64, "intermediate_size": 192, "num_hidden_layers": 2,
                "num_attention_heads": 4, "max_position_embeddings": 32, "vocab_size": 300})"),
      ModelConfig{});
  EXPECT_EQ(m.kv_heads(), 4);
  EXPECT_EQ(m.norm_eps, 1e-6);
  EXPECT_EQ(m.rope_theta, 10000.0);
  EXPECT_FALSE(m.bias);
  EXPECT_FALSE(m.tie_embeddings);
  EXPECT_EQ(m.ff(), 192);
  // transformers 5 keeps rope_theta in rope_parameters.
  nlohmann::json j = nlohmann::json::parse(hf_llama_adapter().config_json(tiny_llama(), -1));
  j.erase("rope_theta");
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1234.0}};
  EXPECT_EQ(hf_llama_adapter().read_config(write(j.dump()), ModelConfig{}).rope_theta, 1234.0);
}

TEST_F(HfConfigFiles, LlamaFieldsThatChangeTheMathAreRefusedByName) {
  const nlohmann::json good = nlohmann::json::parse(hf_llama_adapter().config_json(tiny_llama(), 256));
  ASSERT_EQ(error_of(good), "");
  const std::vector<std::pair<std::string, nlohmann::json>> bad = {
      {"rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0}}},
      {"rope_parameters", {{"rope_type", "yarn"}, {"factor", 4.0}}},
      {"hidden_act", "gelu"},
      {"head_dim", 16},
      {"sliding_window", 4096},
      {"partial_rotary_factor", 0.5},
      {"attention_bias", true},
      {"mlp_bias", true},
      {"num_key_value_heads", 3},
      {"num_hidden_layers", 0},
      {"rms_norm_eps", "small"},
  };
  for (const auto& [field, value] : bad) {
    nlohmann::json j = good;
    j[field] = value;
    const std::string e = error_of(j);
    EXPECT_NE(e.find("config.json: "), std::string::npos) << field << ": " << e;
    EXPECT_NE(e.find(field), std::string::npos) << field << ": " << e;
  }
  nlohmann::json both = good;  // attention_bias and mlp_bias together are tessera's bias = true
  both["attention_bias"] = both["mlp_bias"] = true;
  EXPECT_EQ(error_of(both), "");
  nlohmann::json none = good;  // null is transformers' "not set"
  none["rope_scaling"] = none["sliding_window"] = nullptr;
  EXPECT_EQ(error_of(none), "");
  nlohmann::json missing = good;
  missing.erase("hidden_size");
  EXPECT_NE(error_of(missing).find("hidden_size"), std::string::npos);
}

TEST_F(HfConfigFiles, NeoxAndBloomConfigsRoundTrip) {
  ModelConfig pythia = tiny_neox(), sequential = tiny_neox(), third = tiny_neox();
  sequential.residual = "sequential", sequential.activation = "gelu_tanh", sequential.tie_embeddings = true;
  sequential.rope_fraction = 1.0, sequential.d_ff = 40;
  third.rope_fraction = 1.0 / 3.0;  // 4 of 12 dims: rotary_pct must floor back to 4
  for (const ModelConfig& m : {pythia, sequential, third}) {
    const std::string path = write(hf_neox_adapter().config_json(m, 256));
    EXPECT_EQ(&hf_adapter_for_config(path), &hf_neox_adapter());
    const ModelConfig back = hf_neox_adapter().read_config(path, ModelConfig{});
    expect_same_model(back, m);
    EXPECT_EQ(back.rotary_dims(), m.rotary_dims());
  }
  ModelConfig bloom = tiny_bloom(), untied = tiny_bloom();
  untied.tie_embeddings = false, untied.n_head = 4, untied.norm_eps = 1e-6;
  for (const ModelConfig& m : {bloom, untied}) {
    const std::string path = write(hf_bloom_adapter().config_json(m, 256));
    EXPECT_EQ(&hf_adapter_for_config(path), &hf_bloom_adapter());
    expect_same_model(hf_bloom_adapter().read_config(path, ModelConfig{}), m);
  }
  // Pythia's published config.json (transformers 4 names), and transformers 5's rope_parameters.
  const ModelConfig p = hf_neox_adapter().read_config(
      write(R"({"model_type": "gpt_neox", "hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 6,
                "num_attention_heads": 8, "max_position_embeddings": 2048, "vocab_size": 50304,
                "hidden_act": "gelu", "rotary_pct": 0.25, "rotary_emb_base": 10000, "layer_norm_eps": 1e-05,
                "use_parallel_residual": true, "tie_word_embeddings": false})"),
      ModelConfig{});
  EXPECT_EQ(p.rotary_dims(), 16);
  EXPECT_EQ(p.residual, "parallel");
  EXPECT_EQ(p.activation, "gelu");
  nlohmann::json j = nlohmann::json::parse(hf_neox_adapter().config_json(tiny_neox(), -1));
  j.erase("rotary_pct"), j.erase("rotary_emb_base");
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1234.0}, {"partial_rotary_factor", 1.0}};
  const ModelConfig v5 = hf_neox_adapter().read_config(write(j.dump()), ModelConfig{});
  EXPECT_EQ(v5.rope_theta, 1234.0);
  EXPECT_EQ(v5.rotary_dims(), 12);
  // BLOOM's published config.json (no context length: --config's is kept).
  ModelConfig base;
  base.seq_len = 77;
  const ModelConfig b = hf_bloom_adapter().read_config(
      write(R"({"model_type": "bloom", "n_embed": 64, "n_layer": 2, "num_attention_heads": 8,
                "vocab_size": 500, "layer_norm_epsilon": 1e-5})"),
      base);
  EXPECT_EQ(b.d_model, 64);
  EXPECT_EQ(b.n_head, 8);
  EXPECT_EQ(b.seq_len, 77);
  EXPECT_TRUE(b.tie_embeddings);
  EXPECT_TRUE(b.embedding_norm);
  EXPECT_EQ(b.position, "alibi");
}

TEST_F(HfConfigFiles, NeoxAndBloomFieldsThatChangeTheMathAreRefusedByName) {
  const auto error_with = [&](const HfAdapter& hf, const ModelConfig& m, const std::string& field,
                              const nlohmann::json& value) -> std::string {
    nlohmann::json j = nlohmann::json::parse(hf.config_json(m, -1));
    j[field] = value;
    try {
      hf.read_config(write(j.dump()), ModelConfig{});
    } catch (const UserError& e) {
      return e.what();
    }
    return "";
  };
  const std::vector<std::pair<std::string, nlohmann::json>> neox_bad = {
      {"hidden_act", "relu"},
      {"rope_scaling", {{"type", "linear"}, {"factor", 2.0}}},
      {"attention_bias", false},
      {"rotary_pct", 0.05},  // int(12 * 0.05) = 0 dimensions
      {"rotary_pct", 1.5},
      {"num_attention_heads", 5},
  };
  for (const auto& [field, value] : neox_bad) {
    const std::string e = error_with(hf_neox_adapter(), tiny_neox(), field, value);
    EXPECT_NE(e.find("config.json: "), std::string::npos) << field << ": " << e;
    EXPECT_NE(e.find(field), std::string::npos) << field << ": " << e;
  }
  const std::string e = error_with(hf_bloom_adapter(), tiny_bloom(), "apply_residual_connection_post_layernorm", true);
  EXPECT_NE(e.find("apply_residual_connection_post_layernorm"), std::string::npos) << e;
  EXPECT_EQ(error_with(hf_bloom_adapter(), tiny_bloom(), "slow_but_exact", true), "");
}

TEST(HfAdapters, NeoxAndBloomExportRefuseWhatTheirClassesCannotCompute) {
  const auto refused = [](const HfAdapter& hf, ModelConfig m, const std::string& field) {
    try {
      hf.config_json(m, -1);
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
      return;
    }
    ADD_FAILURE() << hf.family << ": " << field << " was not refused";
  };
  ModelConfig m = tiny_neox();
  m.n_head = 6, m.n_kv_head = 3;
  refused(hf_neox_adapter(), m, "n_kv_head");
  m = tiny_neox(), m.bias = false;
  refused(hf_neox_adapter(), m, "bias");
  m = tiny_neox(), m.activation = "swiglu";
  refused(hf_neox_adapter(), m, "activation");
  m = tiny_bloom(), m.d_ff = 100;
  refused(hf_bloom_adapter(), m, "d_ff");
  m = tiny_bloom(), m.embedding_norm = false;
  refused(hf_bloom_adapter(), m, "embedding_norm");
  m = tiny_bloom(), m.position = "rope";
  refused(hf_bloom_adapter(), m, "position");
}

TEST(HfAdapters, LlamaExportRefusesWhatLlamaForCausalLMCannotCompute) {
  const auto refused = [](ModelConfig m, const std::string& field) {
    try {
      hf_llama_adapter().config_json(m, -1);
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
      return;
    }
    ADD_FAILURE() << field << " was not refused";
  };
  ModelConfig m = tiny_llama();
  m.qkv_bias = true;
  refused(m, "qkv_bias");
  m = tiny_llama(), m.rope_fraction = 0.5;
  refused(m, "rope_fraction");
  m = tiny_llama(), m.norm = "layernorm";
  refused(m, "norm");
  m = tiny_llama(), m.residual = "parallel";
  refused(m, "residual");
}

}  // namespace
}  // namespace tessera
