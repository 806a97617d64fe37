#include "checkpoints/hf/adapter.h"

#include <algorithm>
#include <fstream>

#include "checkpoints/hf/config_file.h"
#include "runtime/error.h"

namespace tessera {
namespace {

// Every family with a Hugging Face adapter.
const std::vector<const HfAdapter*>& hf_adapters() {
  static const std::vector<const HfAdapter*> adapters = {&hf_gpt2_adapter(), &hf_llama_adapter()};
  return adapters;
}

// The end of piece's rows in p (row_end, or p's row count for -1).
int64_t rows_end(const Param& p, const HfPiece& piece) {
  return piece.row_end < 0 ? p.global_shape[0] : piece.row_end;
}

}  // namespace

const HfAdapter* hf_adapter_for(const std::string& family) {
  for (const HfAdapter* a : hf_adapters())
    if (a->family == family) return a;
  return nullptr;
}

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

const HfAdapter& hf_adapter_for_config(const std::string& path) {
  const std::string type = hf_config_file_read(path).value("model_type", std::string());
  std::string known;
  for (const HfAdapter* a : hf_adapters()) {
    if (a->model_type == type) return *a;
    known +=
        (known.empty() ? "" : ", ") + a->display_name + ": model_type \"" + a->model_type + "\"";
  }
  throw UserError(path + ": model_type \"" + type + "\" is not supported (tessera imports " +
                  known + ")");
}

std::vector<int64_t> hf_piece_shape(const Param& p, const HfPiece& piece) {
  const Shape& s = p.global_shape;
  std::vector<int64_t> shape(s.dims.begin(), s.dims.begin() + s.rank);
  shape[0] = rows_end(p, piece) - piece.row_begin;
  if (piece.transform == HfTransform::transpose) std::swap(shape[0], shape[1]);
  return shape;
}

// Transposes are of 2-D tensors: a row is C elements, the piece's rows a block (R, C) of p.
std::vector<float> hf_piece_from_tessera(const Param& p, const HfPiece& piece,
                                         const std::vector<float>& ours) {
  const int64_t C = p.global_shape.numel() / p.global_shape[0],
                R = rows_end(p, piece) - piece.row_begin;
  const auto block = ours.begin() + piece.row_begin * C;  // (R, C)
  if (piece.transform == HfTransform::none) return std::vector<float>(block, block + R * C);
  std::vector<float> out(static_cast<size_t>(R * C));  // (C, R)
  for (int64_t i = 0; i < R; ++i)
    for (int64_t j = 0; j < C; ++j) out[j * R + i] = block[i * C + j];
  return out;
}

void hf_piece_to_tessera(const Param& p, const HfPiece& piece, const std::vector<double>& theirs,
                         std::vector<double>& ours) {
  const int64_t C = p.global_shape.numel() / p.global_shape[0],
                R = rows_end(p, piece) - piece.row_begin;
  TS_ASSERT(static_cast<int64_t>(theirs.size()) == R * C,
            piece.name + ": size differs from its rows of " + p.name);
  const auto block = ours.begin() + piece.row_begin * C;  // (R, C)
  if (piece.transform == HfTransform::none) {
    std::copy(theirs.begin(), theirs.end(), block);
    return;
  }
  for (int64_t i = 0; i < R; ++i)  // theirs: (C, R)
    for (int64_t j = 0; j < C; ++j) block[i * C + j] = theirs[j * R + i];
}

}  // namespace tessera
