// Model hyper-parameters ([model] in the TOML config): a family preset and the components it
// picks, each of which is also its own key (docs/config.md).
#pragma once
#include <cstdint>
#include <string>

namespace tessera {

struct ModelConfig {
  std::string family = "gpt2";  // "gpt2" | "llama" | "neox" | "bloom": a preset of the keys below
  int64_t n_layer = 4;
  int64_t d_model = 128;
  int64_t n_head = 4;
  int64_t n_kv_head = 0;   // 0 = n_head; fewer: grouped-query (1: multi-query) attention
  int64_t d_ff = 0;        // 0 = 4 * d_model (swiglu: 8/3 d_model rounded up to 64)
  int64_t vocab_size = 0;  // 0 = the tokenizer's vocabulary
  int64_t seq_len = 128;
  double dropout = 0.0;
  bool tie_embeddings = true;
  // Components.
  std::string norm = "layernorm";       // "layernorm" | "rmsnorm"
  double norm_eps = 1e-5;
  bool bias = true;                     // every linear layer's bias
  bool qkv_bias = false;                // keep the QKV projection's bias when bias = false
  std::string position = "learned";     // "learned" | "rope" | "alibi"
  double rope_theta = 10000.0;
  double rope_fraction = 1.0;           // share of each head's dimensions rotated
  std::string activation = "gelu_tanh"; // "gelu_tanh" | "gelu" (exact) | "swiglu"
  std::string residual = "sequential";  // "sequential" | "parallel" (x + attn(n1(x)) + mlp(n2(x)))
  bool embedding_norm = false;          // a norm right after the token embedding (BLOOM)
  // Initialisation of the weight matrices and embeddings (norms start at one, biases at zero):
  // "gpt2": N(0, 0.02), the two output projections of each block N(0, 0.02/sqrt(2 n_layer));
  // "neox": GPT-NeoX's small_init N(0, sqrt(2/(5 d_model))), output projections wang_init
  // N(0, 2/(n_layer sqrt(d_model))); "normal": N(0, init_std), output projections
  // N(0, init_std/sqrt(2 n_layer)) (Megatron's scaled init).
  std::string init = "gpt2";
  double init_std = 0.02;

  int64_t kv_heads() const { return n_kv_head ? n_kv_head : n_head; }
  int64_t ff() const;
  int64_t head_size() const { return d_model / n_head; }
  int64_t rotary_dims() const;  // rotated columns per head (0 without rope)
  bool has_linear_bias() const { return bias; }
  bool has_qkv_bias() const { return bias || qkv_bias; }
  // Padded to a multiple of 128 so the LM-head GEMM has friendly shapes (and, later, divides
  // evenly across tensor-parallel ranks).
  int64_t padded_vocab() const { return (vocab_size + 127) / 128 * 128; }
  // Parameters without the padding rows, counted from the parameter registry.
  int64_t num_parameters() const;
  // Training FLOPs per token, from the registry: 6 per weight that multiplies an activation
  // (every block parameter, the norms and the LM head; not the embedding lookups) plus
  // 12 L d_attn T for the attention scores and their use (the PaLM appendix B estimate).
  double flops_per_token() const;
};

// The block's components as the model code tests them (resolved once from the config's
// strings, which config parsing has already checked).
enum class Norm { layernorm, rmsnorm };
enum class Position { learned, rope, alibi };
enum class Activation { gelu_tanh, gelu, swiglu };
enum class Residual { sequential, parallel };
struct BlockComponents {
  Norm norm;
  Position position;
  Activation activation;
  Residual residual;
};
BlockComponents model_components(const ModelConfig& m);

// The standard deviations `init` gives: every initialised matrix and embedding, and the blocks'
// output projections (attn.proj, mlp.proj).
struct InitStds {
  double weight = 0.02, output = 0.02;
};
InitStds model_init_stds(const ModelConfig& m);

// One line describing the model (family, shape, components, vocabulary, context, parameters),
// the same in every command that prints a summary.
std::string model_describe(const ModelConfig& m);

// Sets every component key to family's values (docs/config.md lists them); returns false for
// an unknown family.
bool model_apply_family(ModelConfig& m, const std::string& family);

}  // namespace tessera
