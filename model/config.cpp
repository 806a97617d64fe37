#include "model/config.h"

namespace tessera {

int64_t ModelConfig::num_parameters() const {
  const int64_t C = d_model, F = ff();
  const int64_t per_block = 2 * C + (3 * C * C + 3 * C) + (C * C + C) + 2 * C + (F * C + F) +
                            (C * F + C);
  int64_t n = vocab_size * C + seq_len * C + n_layer * per_block + 2 * C;
  if (!tie_embeddings) n += vocab_size * C;
  return n;
}

double ModelConfig::flops_per_token() const {
  const double n_dense = static_cast<double>(num_parameters() - seq_len * d_model);
  return 6.0 * n_dense + 12.0 * static_cast<double>(n_layer * d_model * seq_len);
}

}  // namespace tessera
