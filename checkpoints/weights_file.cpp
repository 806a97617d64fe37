#include "checkpoints/weights_file.h"

#include <hdf5.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "checkpoints/hdf5.h"
#include "model/init.h"
#include "runtime/error.h"
#include "runtime/cpu/backend.h"
#include "runtime/ops.h"

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

void weights_save(const std::string& path, Device& dev, const ParamRegistry& registry,
                  const std::vector<Tensor>& sources, const WeightsMeta& meta) {
  const std::string tmp = path + ".partial";
  {
    H5Handle file(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
    if (!file.ok()) throw UserError(path + ": cannot create weights file (directory missing or not writable?)");
    write_string_attr(file.get(), "format", kFormat);
    write_int_attr(file.get(), "format_version", kVersion);
    write_int_attr(file.get(), "step", meta.step);
    write_string_attr(file.get(), "config", meta.config_toml);
    write_string_attr(file.get(), "dtype", meta.dtype);
    H5Handle group(H5Gcreate2(file.get(), "model", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    const bool f64 = meta.dtype == "f64";
    const auto& params = registry.all();
    for (size_t i = 0; i < params.size(); ++i) {
      const Param& p = params[i];
      TS_ASSERT(p.shard_dim < 0, "weights_save writes unsharded parameters only");
      const Tensor src = i < sources.size() && !sources[i].empty() ? sources[i] : p.value;
      // Bring to host in the source dtype, then convert to the file dtype.
      std::vector<char> raw(src.bytes());
      dev.copy_to_host(raw.data(), src);
      Tensor host_src{raw.data(), src.dtype, DeviceKind::cpu, src.shape};
      std::vector<char> out(static_cast<size_t>(src.numel()) * (f64 ? 8 : 4));
      Tensor host_out{out.data(), f64 ? DType::f64 : DType::f32, DeviceKind::cpu, src.shape};
      cpu::convert(host_out, host_src);
      hsize_t dims[4];
      for (int d = 0; d < p.global_shape.rank; ++d) dims[d] = p.global_shape[d];
      H5Handle space(H5Screate_simple(p.global_shape.rank, dims, nullptr), H5Sclose);
      const hid_t type = f64 ? H5T_IEEE_F64LE : H5T_IEEE_F32LE;
      H5Handle ds(H5Dcreate2(group.get(), p.name.c_str(), type, space.get(), H5P_DEFAULT,
                             H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
      TS_CHECK_HDF5(ds.get());
      TS_CHECK_HDF5(H5Dwrite(ds.get(), f64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT, H5S_ALL,
                             H5S_ALL, H5P_DEFAULT, out.data()));
    }
    TS_CHECK_HDF5(H5Fflush(file.get(), H5F_SCOPE_GLOBAL));
  }
  std::filesystem::rename(tmp, path);
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
