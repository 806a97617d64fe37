// CPU backend: AdamW.
#include <cmath>

#include "runtime/cpu/backend.h"

namespace tessera::cpu {

// Same order of operations as the common reference implementations (decay applied to the
// pre-update weight, bias corrections folded into the step size) so fp32 runs agree closely.
template <typename T>
void adamw_step(Tensor master, Tensor grad, Tensor m, Tensor v, const ops::AdamWParams& hp) {
  const int64_t n = master.numel();
  T *p = master.ptr<T>(), *mm = m.ptr<T>(), *vv = v.ptr<T>();
  const T* g = grad.ptr<T>();
  const double bc1 = 1.0 - std::pow(static_cast<double>(hp.beta1), static_cast<double>(hp.step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(hp.beta2), static_cast<double>(hp.step));
  const T step_size = static_cast<T>(hp.lr / bc1);
  const T bc2_sqrt = static_cast<T>(std::sqrt(bc2));
  const T decay = static_cast<T>(1.0 - static_cast<double>(hp.lr) * hp.weight_decay);
  const T b1 = hp.beta1, b2 = hp.beta2, eps = hp.eps, gs = hp.grad_scale;
#pragma omp parallel for simd
  for (int64_t i = 0; i < n; ++i) {
    const T gi = g[i] * gs;
    mm[i] = b1 * mm[i] + (T(1) - b1) * gi;
    vv[i] = b2 * vv[i] + (T(1) - b2) * gi * gi;
    p[i] = p[i] * decay - step_size * mm[i] / (std::sqrt(vv[i]) / bc2_sqrt + eps);
  }
}

template void adamw_step<float>(Tensor, Tensor, Tensor, Tensor, const ops::AdamWParams&);
template void adamw_step<double>(Tensor, Tensor, Tensor, Tensor, const ops::AdamWParams&);

}  // namespace tessera::cpu
