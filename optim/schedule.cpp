#include <algorithm>
#include <cmath>

#include "optim/config.h"

namespace tessera {

double lr_at(const OptimConfig& c, int64_t step, int64_t total) {
  if (step < c.warmup_steps)
    return c.lr * static_cast<double>(step + 1) / static_cast<double>(c.warmup_steps);
  if (c.schedule == "constant") return c.lr;
  const double span = std::max<int64_t>(1, total - 1 - c.warmup_steps);
  const double progress = std::clamp((step - c.warmup_steps) / span, 0.0, 1.0);
  if (c.schedule == "cosine")
    return c.min_lr + 0.5 * (1.0 + std::cos(M_PI * progress)) * (c.lr - c.min_lr);
  if (c.schedule == "linear") return c.lr - (c.lr - c.min_lr) * progress;
  // wsd: warmup, stable at lr, then a linear decay over the last decay_fraction of the run.
  const double decay_start = 1.0 - c.decay_fraction;
  if (progress <= decay_start) return c.lr;
  return c.lr - (c.lr - c.min_lr) * (progress - decay_start) / c.decay_fraction;
}

}  // namespace tessera
