#include "checkpoints/hf/adapter.h"

#include <algorithm>

#include "checkpoints/hf/config_file.h"
#include "runtime/error.h"

namespace tessera {
namespace {

// Every family with a Hugging Face adapter.
const std::vector<const HfAdapter*>& hf_adapters() {
  static const std::vector<const HfAdapter*> adapters = {&hf_gpt2_adapter(), &hf_llama_adapter(),
                                                         &hf_neox_adapter(), &hf_bloom_adapter()};
  return adapters;
}

// The end of piece's rows in p (row_end, or p's row count for -1).
int64_t rows_end(const Param& p, const HfPiece& piece) {
  return piece.row_end < 0 ? p.global_shape[0] : piece.row_end;
}

// A per_head_qkv piece covers exactly 3 heads * head_dim rows.
void check_piece(const Param& p, const HfPiece& piece, int64_t rows) {
  if (piece.transform == HfTransform::per_head_qkv)
    TS_ASSERT(piece.heads > 0 && piece.head_dim > 0 && rows == 3 * piece.heads * piece.head_dim,
              piece.name + ": per-head q/k/v layout does not match the rows of " + p.name);
}

// Row r of the HF tensor `piece` (when it is not transposed) is row `ours_row(piece, r)` of
// p. per_head_qkv: HF row r is element i of part (q, k, v) of head h, with r = (3 h + part) D + i;
// tessera keeps part's heads together: row part H D + h D + i.
int64_t ours_row(const HfPiece& piece, int64_t r) {
  if (piece.transform != HfTransform::per_head_qkv) return piece.row_begin + r;
  const int64_t D = piece.head_dim, H = piece.heads;
  const int64_t h = r / (3 * D), part = (r / D) % 3, i = r % D;
  return piece.row_begin + part * H * D + h * D + i;
}

}  // namespace

const HfAdapter* hf_adapter_for(const std::string& family) {
  for (const HfAdapter* a : hf_adapters())
    if (a->family == family) return a;
  return nullptr;
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

int64_t hf_piece_numel(const Param& p, const HfPiece& piece) {
  return (rows_end(p, piece) - piece.row_begin) * (p.global_shape.numel() / p.global_shape[0]);
}

// Transposes are of 2-D tensors: a row is C elements, the piece's rows a block (R, C) of p.
std::vector<float> hf_piece_from_tessera(const Param& p, const HfPiece& piece, const float* ours) {
  const int64_t C = p.global_shape.numel() / p.global_shape[0],
                R = rows_end(p, piece) - piece.row_begin;
  check_piece(p, piece, R);
  std::vector<float> out(static_cast<size_t>(R * C));
  if (piece.transform == HfTransform::transpose) {  // out (C, R)
    const float* block = ours + piece.row_begin * C;
    for (int64_t i = 0; i < R; ++i)
      for (int64_t j = 0; j < C; ++j) out[j * R + i] = block[i * C + j];
    return out;
  }
  for (int64_t r = 0; r < R; ++r) std::copy_n(ours + ours_row(piece, r) * C, C, out.begin() + r * C);
  return out;
}

template <typename T>
void hf_piece_to_tessera(const Param& p, const HfPiece& piece, const T* theirs, T* ours) {
  const int64_t C = p.global_shape.numel() / p.global_shape[0],
                R = rows_end(p, piece) - piece.row_begin;
  check_piece(p, piece, R);
  if (piece.transform == HfTransform::transpose) {  // theirs (C, R)
    T* block = ours + piece.row_begin * C;
    for (int64_t i = 0; i < R; ++i)
      for (int64_t j = 0; j < C; ++j) block[i * C + j] = theirs[j * R + i];
    return;
  }
  for (int64_t r = 0; r < R; ++r) std::copy_n(theirs + r * C, C, ours + ours_row(piece, r) * C);
}

template void hf_piece_to_tessera<float>(const Param&, const HfPiece&, const float*, float*);
template void hf_piece_to_tessera<double>(const Param&, const HfPiece&, const double*, double*);

}  // namespace tessera
