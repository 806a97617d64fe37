// config.json of a Hugging Face model directory, read and written for the adapters
// (checkpoints/hf/).
#pragma once
#include <nlohmann/json.hpp>
#include <cstdint>
#include <initializer_list>
#include <string>

namespace tessera {

// The JSON object in the file at `path`. UserError naming the file when it cannot be read or
// is not a JSON object.
nlohmann::json hf_config_file_read(const std::string& path);

// The fields every family's config.json ends with (tied embeddings, bos/eos from `eod_id`
// when >= 0, float32, use_cache), then the file's text.
std::string hf_config_file_text(nlohmann::ordered_json& j, bool tie_embeddings, int64_t eod_id);

// Rotary embeddings as config.json describes them.
struct HfRope {
  double theta = 10000.0;
  double fraction = 1.0;  // of each head's dimensions rotated
};

// The fields of one config.json, each read with a one-line UserError naming the file and the
// key when it has the wrong type. A key that is absent or null takes the default.
class HfConfigFields {
 public:
  explicit HfConfigFields(const std::string& path) : path_(path), j_(hf_config_file_read(path)) {}
  const nlohmann::json& json() const { return j_; }
  // Whether `key` is there and not null.
  bool present(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }
  // UserError "PATH: why".
  [[noreturn]] void bad(const std::string& why) const;
  int64_t integer(const char* key) const;  // a positive integer; required
  int64_t integer(const char* key, int64_t dflt) const;
  double number(const char* key, double dflt) const;  // a positive number
  bool flag(const char* key, bool dflt) const;
  std::string string(const char* key, const std::string& dflt) const;
  // RoPE from the first present of the top-level `theta_keys` / `fraction_keys` (names differ
  // between families), overridden by rope_scaling (transformers 4) or rope_parameters (5),
  // which may only describe the default, unscaled rope: any other rope_type is refused.
  HfRope rope(std::initializer_list<const char*> theta_keys,
              std::initializer_list<const char*> fraction_keys, HfRope dflt) const;

 private:
  std::string path_;
  nlohmann::json j_;
};

}  // namespace tessera
