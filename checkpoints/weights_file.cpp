#include "checkpoints/weights_file.h"

#include <hdf5.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "checkpoints/checkpoint_internal.h"
#include "checkpoints/hdf5.h"
#include "model/init.h"
#include "runtime/error.h"

namespace tessera {
namespace {

constexpr const char* kFormat = "tessera-weights";
constexpr int kVersion = 1;

using h5::read_int_attr;
using h5::read_string_attr;
using h5::write_int_attr;
using h5::write_string_attr;
using H5Handle = h5::Handle;

// Opens a weights file for reading or throws a one-line UserError.
hid_t open_weights(const std::string& path) {
  if (!std::filesystem::exists(path)) throw UserError(path + ": no such weights file");
  H5E_BEGIN_TRY { 
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) throw UserError(path + ": not a readable HDF5 file (truncated or corrupted?)");
    std::string format;
    if (!read_string_attr(f, "format", format) || format != kFormat) {
      H5Fclose(f);
      throw UserError(path + ": not a tessera weights file (attribute format != " + kFormat + ")");
    }
    return f;
  } H5E_END_TRY;
  return -1;
}

}  // namespace

WeightsWriter::WeightsWriter(const std::string& path, const WeightsMeta& meta)
    : path_(path), tmp_(path + ".partial"), f64_(meta.dtype == "f64") {
  TS_ASSERT(meta.dtype == "f32" || meta.dtype == "f64", "weights are written as f32 or f64");
  file_ = H5Fcreate(tmp_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file_ < 0) throw UserError(path + ": cannot create weights file (directory missing or not writable?)");
  write_string_attr(file_, "format", kFormat);
  write_int_attr(file_, "format_version", kVersion);
  write_int_attr(file_, "step", meta.step);
  write_string_attr(file_, "config", meta.config_toml);
  write_string_attr(file_, "dtype", meta.dtype);
  group_ = H5Gcreate2(file_, "model", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  TS_CHECK_HDF5(group_);
}

WeightsWriter::~WeightsWriter() {
  if (group_ >= 0) H5Gclose(group_);
  if (file_ >= 0) {
    H5Fclose(file_);
    std::error_code ec;
    std::filesystem::remove(tmp_, ec);
  }
}

void WeightsWriter::write(const std::string& name, const Shape& shape, const void* data) {
  hsize_t dims[4];
  for (int d = 0; d < shape.rank; ++d) dims[d] = static_cast<hsize_t>(shape[d]);
  H5Handle space(H5Screate_simple(shape.rank, dims, nullptr), H5Sclose);
  H5Handle ds(H5Dcreate2(group_, name.c_str(), f64_ ? H5T_IEEE_F64LE : H5T_IEEE_F32LE,
                         space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
              H5Dclose);
  TS_CHECK_HDF5(ds.get());
  TS_CHECK_HDF5(H5Dwrite(ds.get(), f64_ ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL,
                         H5P_DEFAULT, data));
}

// Synced before the rename, so that the name never points at a file still in the page cache.
void WeightsWriter::commit() {
  H5Gclose(group_);
  group_ = -1;
  const bool closed = H5Fclose(file_) >= 0;
  file_ = -1;
  try {
    if (!closed) throw UserError(path_ + ": cannot write weights file (disk full?)");
    ckpt::sync_path(tmp_);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(tmp_, ec);
    throw;
  }
  std::filesystem::rename(tmp_, path_);
}

WeightsMeta weights_read_meta(const std::string& path) {
  H5Handle file(open_weights(path), H5Fclose);
  WeightsMeta m;
  read_string_attr(file.get(), "config", m.config_toml);
  read_string_attr(file.get(), "dtype", m.dtype);
  m.step = read_int_attr(file.get(), "step");
  return m;
}

void weights_load(const std::string& path, Device& dev, ParamRegistry& registry) {
  H5Handle file(open_weights(path), H5Fclose);
  for (Param& p : registry.all()) {
    const std::string name = "model/" + p.name;
    htri_t exists = H5Lexists(file.get(), "model", H5P_DEFAULT) > 0
                        ? H5Lexists(file.get(), name.c_str(), H5P_DEFAULT)
                        : 0;
    if (exists <= 0) throw UserError(path + ": dataset " + name + " is missing");
    H5Handle ds(H5Dopen2(file.get(), name.c_str(), H5P_DEFAULT), H5Dclose);
    H5Handle space(H5Dget_space(ds.get()), H5Sclose);
    hsize_t dims[4] = {0, 0, 0, 0};
    const int rank = H5Sget_simple_extent_ndims(space.get());
    H5Sget_simple_extent_dims(space.get(), dims, nullptr);
    bool same = rank == p.global_shape.rank;
    for (int d = 0; same && d < rank; ++d) same = static_cast<int64_t>(dims[d]) == p.global_shape[d];
    if (!same)
      throw UserError(path + ": dataset " + name + " has a different shape than the model's " +
                      p.global_shape.str());
    std::vector<double> host(p.value.numel());
    H5E_BEGIN_TRY {
      if (H5Dread(ds.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, host.data()) < 0)
        throw UserError(path + ": cannot read dataset " + name + " (truncated or corrupted file?)");
    } H5E_END_TRY;
    param_upload(dev, p, host.data());
  }
}

}  // namespace tessera
