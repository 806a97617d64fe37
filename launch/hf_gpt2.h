// GPT-2 in the Hugging Face transformers layout (GPT2LMHeadModel), for `tessera export --format
// hf` and `tessera import`: tensor names, the Conv1D orientation ([in, out], the transpose of
// tessera's [out, in]), the unpadded vocabulary, and config.json.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/params.h"

namespace tessera {

// Where a tessera parameter lives in a GPT2LMHeadModel state dict.
struct HfTensorName {
  std::string name;         // e.g. "transformer.h.0.attn.c_attn.weight"
  bool transpose = false;   // Conv1D weights: stored [in, out]
  bool vocab_rows = false;  // wte / lm_head: only the model's real vocabulary rows
};
HfTensorName hf_gpt2_name(const std::string& tessera_name);

// The HF shape of parameter `p` (global shape; vocab_rows tensors cut to `vocab_size` rows).
std::vector<int64_t> hf_gpt2_shape(const Param& p, const HfTensorName& hf, int64_t vocab_size);
// Converts p's global tensor (row-major, `ours`) to the HF layout, and back. The way back
// fills padding rows of the vocabulary with zeros.
std::vector<float> hf_gpt2_from_tessera(const Param& p, const HfTensorName& hf, int64_t vocab_size,
                                        const std::vector<float>& ours);
std::vector<double> hf_gpt2_to_tessera(const Param& p, const HfTensorName& hf, int64_t vocab_size,
                                       const std::vector<double>& theirs);

// config.json for GPT2LMHeadModel. `eod_id` becomes bos/eos_token_id (-1: left out).
std::string hf_gpt2_config_json(const ModelConfig& m, int64_t eod_id);
// The model section described by config.json at `path` (family gpt2 only); fields config.json
// does not describe (dropout) keep their values in `base`. UserError naming the file and key.
ModelConfig hf_gpt2_config_read(const std::string& path, const ModelConfig& base);

}  // namespace tessera
