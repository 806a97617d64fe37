#include "checkpoints/hdf5.h"

#include <cstring>

#include "runtime/error.h"

namespace tessera::h5 {

QuietErrors::QuietErrors() {
  H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

QuietErrors::~QuietErrors() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }

void write_string_attr(hid_t obj, const char* name, const std::string& value) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  TS_CHECK_HDF5(H5Tset_size(type.get(), value.size() ? value.size() : 1));
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr(H5Acreate2(obj, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  TS_CHECK_HDF5(attr.get());
  const std::string padded = value.empty() ? std::string(1, '\0') : value;
  TS_CHECK_HDF5(H5Awrite(attr.get(), type.get(), padded.c_str()));
}

void write_int_attr(hid_t obj, const char* name, int64_t value) {
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr(H5Acreate2(obj, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  TS_CHECK_HDF5(attr.get());
  TS_CHECK_HDF5(H5Awrite(attr.get(), H5T_NATIVE_INT64, &value));
}

void write_ints_attr(hid_t obj, const char* name, const std::vector<int64_t>& values) {
  const hsize_t n = values.size();
  Handle space(n ? H5Screate_simple(1, &n, nullptr) : H5Screate(H5S_NULL), H5Sclose);
  Handle attr(H5Acreate2(obj, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  TS_CHECK_HDF5(attr.get());
  if (n) TS_CHECK_HDF5(H5Awrite(attr.get(), H5T_NATIVE_INT64, values.data()));
}

bool read_string_attr(hid_t obj, const char* name, std::string& out) {
  if (H5Aexists(obj, name) <= 0) return false;
  Handle attr(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  Handle type(H5Aget_type(attr.get()), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_STRING || H5Tis_variable_str(type.get()) > 0) return false;
  const size_t n = H5Tget_size(type.get());
  std::vector<char> buf(n + 1, 0);
  Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(mem.get(), n);
  if (H5Aread(attr.get(), mem.get(), buf.data()) < 0) return false;
  out.assign(buf.data(), strnlen(buf.data(), n));
  return true;
}

int64_t read_int_attr(hid_t obj, const char* name) {
  int64_t v = 0;
  if (H5Aexists(obj, name) <= 0) return 0;
  Handle attr(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  H5Aread(attr.get(), H5T_NATIVE_INT64, &v);
  return v;
}

std::vector<int64_t> read_ints_attr(hid_t obj, const char* name) {
  if (H5Aexists(obj, name) <= 0) return {};
  Handle attr(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  Handle space(H5Aget_space(attr.get()), H5Sclose);
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  std::vector<int64_t> v(n > 0 ? n : 0);
  if (n > 0 && H5Aread(attr.get(), H5T_NATIVE_INT64, v.data()) < 0) return {};
  return v;
}

Handle create_groups(hid_t loc, const std::string& path) {
  Handle current(H5Gopen2(loc, "/", H5P_DEFAULT), H5Gclose);
  size_t start = 0;
  while (start < path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    const std::string part = path.substr(start, end - start);
    if (!part.empty()) {
      Handle next;
      if (H5Lexists(current.get(), part.c_str(), H5P_DEFAULT) > 0)
        next = Handle(H5Gopen2(current.get(), part.c_str(), H5P_DEFAULT), H5Gclose);
      else
        next = Handle(H5Gcreate2(current.get(), part.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
      TS_CHECK_HDF5(next.get());
      current = std::move(next);
    }
    start = end + 1;
  }
  return current;
}

}  // namespace tessera::h5
