// The final-weights file: one HDF5 file, one dataset per parameter under /model/<name> with its
// global shape, plus attributes carrying the resolved config. Documented in
// docs/weights-format.md. (Sharded, resumable checkpoints are built on the same naming.)
#pragma once
#include <string>
#include <vector>

#include "model/params.h"
#include "runtime/device.h"

namespace tessera {

struct WeightsMeta {
  std::string config_toml;  // the resolved config of the run that wrote the file
  int64_t step = 0;
  std::string dtype;        // "f32" or "f64"
};

// Writes every parameter (or, where given, the matching `sources` tensor, e.g. f32 master
// weights) to `path`, atomically (temporary name, then rename).
void weights_save(const std::string& path, Device& dev, const ParamRegistry& registry,
                  const std::vector<Tensor>& sources, const WeightsMeta& meta);
// Reads metadata only. Throws UserError when the file is missing or not a tessera weights file.
WeightsMeta weights_read_meta(const std::string& path);
// Loads every registered parameter from `path` into its value tensor (converting dtypes).
// A missing dataset or a shape mismatch is a UserError naming the parameter.
void weights_load(const std::string& path, Device& dev, ParamRegistry& registry);

}  // namespace tessera
