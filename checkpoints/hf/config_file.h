// config.json of a Hugging Face model directory, read for the adapters (checkpoints/hf/).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace tessera {

// The JSON object in the file at `path`. UserError naming the file when it cannot be read or
// is not a JSON object.
nlohmann::json hf_config_file_read(const std::string& path);

}  // namespace tessera
