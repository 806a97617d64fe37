#include "model/init.h"

#include <vector>

#include "runtime/ops.h"
#include "runtime/philox.h"

namespace tessera {

int64_t param_global_index(const Param& p, int64_t i) {
  if (p.shard_dim < 0) return i;
  // Decompose the local index, shift the sharded dimension, recompose globally.
  int64_t idx[4] = {0, 0, 0, 0};
  int64_t rem = i;
  for (int d = p.local_shape.rank - 1; d >= 0; --d) {
    idx[d] = rem % p.local_shape[d];
    rem /= p.local_shape[d];
  }
  idx[p.shard_dim] = param_shard_global(p, idx[p.shard_dim]);
  int64_t g = 0;
  for (int d = 0; d < p.global_shape.rank; ++d) g = g * p.global_shape[d] + idx[d];
  return g;
}

void init_parameters(Device& dev, ParamRegistry& registry, uint64_t seed) {
  for (Param& p : registry.all()) {
    const int64_t n = p.local_shape.numel();
    const int64_t row = p.global_shape.numel() / p.global_shape[0];
    const uint64_t stream = philox::hash_name(p.name.c_str());
    std::vector<double> host(n);
#pragma omp parallel for
    for (int64_t i = 0; i < n; ++i) {
      const int64_t g = param_global_index(p, i);
      switch (p.init) {
        case ParamInit::zeros: host[i] = 0; break;
        case ParamInit::ones: host[i] = 1; break;
        case ParamInit::normal:
          host[i] = (p.init_rows >= 0 && g / row >= p.init_rows)
                        ? 0.0
                        : p.init_std * philox::normal(seed, stream, static_cast<uint64_t>(g));
      }
    }
    param_upload(dev, p, host.data());
  }
}

void param_upload(Device& dev, Param& p, const double* host) {
  Tensor src{const_cast<double*>(host), DType::f64, DeviceKind::cpu, p.local_shape};
  if (dev.kind() == DeviceKind::cpu) return ops::convert(dev, p.value, src);
  const int64_t n = p.local_shape.numel();
  std::vector<float> f(host, host + n);
  dev.copy_from_host(p.grad, f.data());
  ops::convert(dev, p.value, p.grad);
  ops::fill_zero(dev, p.grad);
}

}  // namespace tessera
