// Model hyper-parameters ([model] in the TOML config).
#pragma once
#include <cstdint>
#include <string>

namespace tessera {

struct ModelConfig {
  std::string family = "gpt2";
  int64_t n_layer = 4;
  int64_t d_model = 128;
  int64_t n_head = 4;
  int64_t n_kv_head = 0;   // 0 = n_head (GPT-2 has no grouped-query attention)
  int64_t d_ff = 0;        // 0 = 4 * d_model
  int64_t vocab_size = 0;  // 0 = the tokenizer's vocabulary
  int64_t seq_len = 128;
  double dropout = 0.0;
  bool tie_embeddings = true;
  double layernorm_eps = 1e-5;

  int64_t ff() const { return d_ff ? d_ff : 4 * d_model; }
  int64_t head_size() const { return d_model / n_head; }
  // Padded to a multiple of 128 so the LM-head GEMM has friendly shapes (and, later, divides
  // evenly across tensor-parallel ranks).
  int64_t padded_vocab() const { return (vocab_size + 127) / 128 * 128; }
  // Parameters without the padding rows.
  int64_t num_parameters() const;
  // Training FLOPs per token: 6N for the dense layers plus 12 L d T for attention scores
  // (the PaLM appendix B estimate). N excludes the position embedding.
  double flops_per_token() const;
};

}  // namespace tessera
