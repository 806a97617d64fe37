#include "checkpoints/hf/config_file.h"

#include <fstream>

#include "runtime/error.h"

namespace tessera {

nlohmann::json hf_config_file_read(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw UserError(path + ": cannot read (an exported model directory holds config.json)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    throw UserError(path + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  if (!j.is_object()) throw UserError(path + ": expected a JSON object");
  return j;
}

std::string hf_config_file_text(nlohmann::ordered_json& j, bool tie_embeddings, int64_t eod_id) {
  j["tie_word_embeddings"] = tie_embeddings;
  if (eod_id >= 0) {
    j["bos_token_id"] = eod_id;
    j["eos_token_id"] = eod_id;
  }
  j["torch_dtype"] = "float32";
  j["use_cache"] = true;
  return j.dump(2) + "\n";
}

void HfConfigFields::bad(const std::string& why) const { throw UserError(path_ + ": " + why); }

int64_t HfConfigFields::integer(const char* key) const {
  if (!present(key)) bad(std::string("missing key ") + key);
  return integer(key, 0);
}

int64_t HfConfigFields::integer(const char* key, int64_t dflt) const {
  if (!present(key)) return dflt;
  if (!j_[key].is_number_integer() || j_[key].get<int64_t>() <= 0)
    bad(std::string(key) + " must be a positive integer");
  return j_[key].get<int64_t>();
}

double HfConfigFields::number(const char* key, double dflt) const {
  if (!present(key)) return dflt;
  if (!j_[key].is_number() || !(j_[key].get<double>() > 0)) bad(std::string(key) + " must be a positive number");
  return j_[key].get<double>();
}

bool HfConfigFields::flag(const char* key, bool dflt) const {
  if (!present(key)) return dflt;
  if (!j_[key].is_boolean()) bad(std::string(key) + " must be true or false");
  return j_[key].get<bool>();
}

std::string HfConfigFields::string(const char* key, const std::string& dflt) const {
  if (!present(key)) return dflt;
  if (!j_[key].is_string()) bad(std::string(key) + " must be a string");
  return j_[key].get<std::string>();
}

HfRope HfConfigFields::rope(std::initializer_list<const char*> theta_keys,
                            std::initializer_list<const char*> fraction_keys, HfRope dflt) const {
  HfRope r = dflt;
  for (const char* key : theta_keys)
    if (present(key)) {
      r.theta = number(key, r.theta);
      break;
    }
  for (const char* key : fraction_keys)
    if (present(key)) {
      r.fraction = number(key, r.fraction);
      break;
    }
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    if (!present(key)) continue;
    const nlohmann::json& o = j_[key];
    const std::string k = key;
    if (!o.is_object()) bad(k + " must be null or an object");
    const char* type_key = o.contains("rope_type") ? "rope_type" : "type";
    if (o.contains(type_key) && !o[type_key].is_string()) bad(k + "." + type_key + " must be a string");
    const std::string type = o.value(type_key, std::string("default"));
    if (type != "default")
      bad(k + " with rope_type \"" + type + "\" is not supported (tessera's rope is unscaled: " + k +
          " must be null or name the default rope)");
    auto positive = [&](const char* field, double& into) {
      if (!o.contains(field) || o[field].is_null()) return;
      if (!o[field].is_number() || !(o[field].get<double>() > 0))
        bad(k + "." + field + " must be a positive number");
      into = o[field].get<double>();
    };
    positive("rope_theta", r.theta);
    positive("partial_rotary_factor", r.fraction);
  }
  return r;
}

}  // namespace tessera
