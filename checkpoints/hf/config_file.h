// config.json of a Hugging Face model directory, read for the adapters (checkpoints/hf/).
#pragma once
#include <nlohmann/json.hpp>
#include <cstdint>
#include <string>

namespace tessera {

// The JSON object in the file at `path`. UserError naming the file when it cannot be read or
// is not a JSON object.
nlohmann::json hf_config_file_read(const std::string& path);

// The fields every family's config.json ends with (tied embeddings, bos/eos from `eod_id`
// when >= 0, float32, use_cache), then the file's text.
std::string hf_config_file_text(nlohmann::ordered_json& j, bool tie_embeddings, int64_t eod_id);

}  // namespace tessera
