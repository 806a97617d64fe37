// Parameter initialisation from counter-based random numbers: element (i) of the GLOBAL tensor
// `name` gets philox::normal(seed, hash(name), i) * std, so every rank computes the values of
// its own slice and any layout starts from the same weights.
#pragma once
#include <cstdint>

#include "model/params.h"
#include "runtime/device.h"

namespace tessera {

void init_parameters(Device& dev, ParamRegistry& registry, uint64_t seed);

// Writes host doubles (the parameter's local elements) into p.value in its dtype. On a GPU the
// values are staged through p.grad (f32) and rounded on the device; p.grad is zeroed after.
void param_upload(Device& dev, Param& p, const double* host);

// Global flat index of local element `i` of parameter `p` (its shard spec applied).
int64_t param_global_index(const Param& p, int64_t i);

}  // namespace tessera
