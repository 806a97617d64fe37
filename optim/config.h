// [optim] in the TOML config.
#pragma once
#include <cstdint>
#include <string>

namespace tessera {

struct OptimConfig {
  double lr = 6e-4;
  double min_lr = 6e-5;
  int64_t warmup_steps = 0;
  std::string schedule = "cosine";  // cosine | linear | constant | wsd
  double decay_fraction = 0.2;      // wsd: share of the run spent decaying at the end
  double weight_decay = 0.1;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double grad_clip = 1.0;  // 0 = no clipping
  bool decay_embeddings = false;
  bool decay_norms_and_biases = false;
};

// Learning rate for 0-based `step` of a `total_steps` run: linear warmup to lr, then the
// schedule down to min_lr at the last step.
double lr_at(const OptimConfig& cfg, int64_t step, int64_t total_steps);

}  // namespace tessera
