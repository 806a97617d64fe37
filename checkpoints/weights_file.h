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

// Writes a weights file one parameter at a time, so that the caller holds one tensor at once,
// never the whole model. Atomic: the file is written under a temporary name and renamed into
// place by commit(); a writer destroyed before commit() removes the temporary file.
class WeightsWriter {
 public:
  WeightsWriter(const std::string& path, const WeightsMeta& meta);
  ~WeightsWriter();
  WeightsWriter(const WeightsWriter&) = delete;
  WeightsWriter& operator=(const WeightsWriter&) = delete;
  // /model/<name>: `data` is the global tensor of `shape`, row-major, in meta.dtype.
  void write(const std::string& name, const Shape& shape, const void* data);
  void commit();

 private:
  std::string path_, tmp_;
  bool f64_ = false;
  int64_t file_ = -1, group_ = -1;  // HDF5 ids (hid_t)
};
// Reads metadata only. Throws UserError when the file is missing or not a tessera weights file.
WeightsMeta weights_read_meta(const std::string& path);
// Loads every registered parameter from `path` into its value tensor (converting dtypes).
// A missing dataset or a shape mismatch is a UserError naming the parameter.
void weights_load(const std::string& path, Device& dev, ParamRegistry& registry);

}  // namespace tessera
