// A model family in the Hugging Face transformers layout, for `tessera export --format hf` and
// `tessera import`: one adapter per family (checkpoints/hf/<family>.cpp) says which HF
// architecture it is, writes and reads its config.json, and maps every tessera parameter to the
// HF tensors it is made of. The commands hold the rest (reading the checkpoint, safetensors,
// the model card), the same for every family.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/params.h"

namespace tessera {

// How an HF tensor's elements are laid out relative to the tessera rows it holds.
enum class HfTransform {
  none,       // the same row-major layout
  transpose,  // a 2-D tensor stored [in, out] (GPT-2's Conv1D): tessera's [out, in] transposed
  // NeoX's and BLOOM's fused query_key_value: rows grouped by head, [q_h; k_h; v_h] for each
  // head h, where tessera's attn.qkv holds [q (all heads); k; v]. Needs heads and head_dim.
  per_head_qkv,
};

// One HF tensor: rows [row_begin, row_end) of a tessera tensor (dimension 0 of its global
// shape), after `transform`. Rows no piece covers are the vocabulary's padding: not exported,
// zero on import.
struct HfPiece {
  std::string name;                     // e.g. "transformer.h.0.attn.c_attn.weight"
  int64_t row_begin = 0, row_end = -1;  // -1: through the last row
  HfTransform transform = HfTransform::none;
  int64_t heads = 0, head_dim = 0;  // per_head_qkv only
};

// One tessera tensor and the HF tensors it is made of, in row order: one piece for GPT-2 (the
// whole tensor, or wte's real vocabulary rows); several for a fused tensor whose parts HF
// stores apart (LLaMA's q_proj, k_proj, v_proj as attn.qkv.weight's rows [q; k; v]).
struct HfTensorMap {
  std::string tessera_name;
  std::vector<HfPiece> pieces;
};

struct HfAdapter {
  std::string family;             // tessera's [model] family: "gpt2"
  std::string model_type;         // config.json's model_type: "gpt2"
  std::string architecture;       // config.json's architectures[0]: "GPT2LMHeadModel"
  std::string display_name;       // in messages and the model card: "GPT-2"
  std::string base_model_prefix;  // what the base model (GPT2Model) saves without: "transformer."
  std::vector<std::string> buffer_suffixes;  // state-dict entries that are not weights

  // config.json for model `m`; `eod_id` becomes bos/eos_token_id (-1: left out).
  std::string (*config_json)(const ModelConfig& m, int64_t eod_id);
  // One line for `tessera export` saying what config.json holds.
  std::string (*config_summary)(const ModelConfig& m);
  // The model section described by config.json at `path`, whose model_type is this adapter's;
  // fields config.json does not describe (dropout) keep their values in `base`. UserError
  // naming the file and key.
  ModelConfig (*read_config)(const std::string& path, const ModelConfig& base);
  // Where parameter `tessera_name` of model `m` lives in the HF state dict.
  HfTensorMap (*tensor_map)(const ModelConfig& m, const std::string& tessera_name);
};

// The adapter of tessera family `family`, or nullptr when it has none yet.
const HfAdapter* hf_adapter_for(const std::string& family);
// The adapter whose model_type config.json at `path` names. UserError naming the file when it
// cannot be read, is not a JSON object, or names a model_type no adapter reads.
const HfAdapter& hf_adapter_for_config(const std::string& path);

// The HF shape of `piece` of parameter p (whose global shape is used).
std::vector<int64_t> hf_piece_shape(const Param& p, const HfPiece& piece);
// Elements in the HF tensor `piece`.
int64_t hf_piece_numel(const Param& p, const HfPiece& piece);
// p's global tensor (row-major, `ours`) as the HF tensor `piece`. A piece without a transform
// is the contiguous block of ours from row piece.row_begin: callers may use it in place.
std::vector<float> hf_piece_from_tessera(const Param& p, const HfPiece& piece, const float* ours);
// The HF tensor `piece` (`theirs`, hf_piece_numel elements) written into its rows of p's global
// tensor `ours`.
template <typename T>
void hf_piece_to_tessera(const Param& p, const HfPiece& piece, const T* theirs, T* ours);

// The families (each in checkpoints/hf/<family>.cpp).
const HfAdapter& hf_gpt2_adapter();
const HfAdapter& hf_llama_adapter();
const HfAdapter& hf_neox_adapter();
const HfAdapter& hf_bloom_adapter();

}  // namespace tessera
