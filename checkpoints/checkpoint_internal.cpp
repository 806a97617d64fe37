#include "checkpoints/checkpoint_internal.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "checkpoints/crc32.h"

namespace tessera::ckpt {

std::string os_reason() { return std::strerror(errno); }
// Syncs a file or directory to disk.
void sync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw UserError(path + ": cannot open to sync (" + os_reason() + ")");
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  errno = err;
  if (rc != 0) throw UserError(path + ": cannot sync to disk (" + os_reason() + ")");
}


std::string file_crc32(const std::string& path, int64_t& bytes, uint32_t& crc) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return path + ": cannot open (" + os_reason() + ")";
  std::vector<unsigned char> buf(8 << 20);
  uint32_t c = 0;
  bytes = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      const std::string why = os_reason();
      ::close(fd);
      return path + ": cannot read (" + why + ")";
    }
    if (n == 0) break;
    c = crc32_update(c, buf.data(), static_cast<size_t>(n));
    bytes += n;
  }
  ::close(fd);
  crc = c;
  return "";
}

std::vector<std::string> link_names(hid_t group) {
  H5G_info_t info;
  if (H5Gget_info(group, &info) < 0) return {};
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t n = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    std::string s(n > 0 ? n : 0, '\0');
    if (n > 0) H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, s.data(), n + 1, H5P_DEFAULT);
    names.push_back(s);
  }
  return names;
}

bool path_exists(hid_t file, const std::string& path) {
  size_t pos = 0;
  for (;;) {
    pos = path.find('/', pos + 1);
    const std::string prefix = path.substr(0, pos);
    if (H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (pos == std::string::npos) return true;
  }
}

Shape dataset_shape(hid_t ds) {
  h5::Handle space(H5Dget_space(ds), H5Sclose);
  hsize_t dims[4] = {0, 0, 0, 0};
  const int r = H5Sget_simple_extent_ndims(space.get());
  Shape s;
  if (r < 1 || r > 4) return s;
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  s.rank = r;
  for (int d = 0; d < r; ++d) s.dims[d] = static_cast<int64_t>(dims[d]);
  return s;
}

Shape to_shape(const std::vector<int64_t>& v) {
  Shape s;
  for (int64_t x : v) s.dims[s.rank++] = x;
  return s;
}

std::vector<int64_t> from_shape(const Shape& s) { return {s.dims.begin(), s.dims.begin() + s.rank}; }

void write_strings(hid_t loc, const char* name, const std::vector<std::string>& values) {
  size_t width = 1;
  for (const auto& v : values) width = std::max(width, v.size());
  std::vector<char> buf(width * values.size(), '\0');
  for (size_t i = 0; i < values.size(); ++i) std::memcpy(&buf[i * width], values[i].data(), values[i].size());
  h5::Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), width);
  const hsize_t n = values.size();
  h5::Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  h5::Handle ds(H5Dcreate2(loc, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  TS_CHECK_HDF5(ds.get());
  if (n) TS_CHECK_HDF5(H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()));
}

void write_matrix(hid_t loc, const char* name, hsize_t columns, const std::vector<int64_t>& values) {
  const hsize_t dims[2] = {values.size() / columns, columns};
  h5::Handle space(H5Screate_simple(2, dims, nullptr), H5Sclose);
  h5::Handle ds(H5Dcreate2(loc, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  TS_CHECK_HDF5(ds.get());
  if (!values.empty()) TS_CHECK_HDF5(H5Dwrite(ds.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()));
}

std::vector<int64_t> read_all_ints(hid_t loc, const char* name) {
  if (H5Lexists(loc, name, H5P_DEFAULT) <= 0) return {};
  h5::Handle ds(H5Dopen2(loc, name, H5P_DEFAULT), H5Dclose);
  h5::Handle space(H5Dget_space(ds.get()), H5Sclose);
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  std::vector<int64_t> v(n > 0 ? n : 0);
  if (!v.empty() && H5Dread(ds.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) < 0) return {};
  return v;
}

std::vector<std::string> read_strings(hid_t loc, const char* name) {
  if (H5Lexists(loc, name, H5P_DEFAULT) <= 0) return {};
  h5::Handle ds(H5Dopen2(loc, name, H5P_DEFAULT), H5Dclose);
  h5::Handle type(H5Dget_type(ds.get()), H5Tclose);
  const size_t width = H5Tget_size(type.get());
  const int64_t n = dataset_shape(ds.get())[0];
  std::vector<char> buf(width * n + 1, '\0');
  h5::Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(mem.get(), width);
  if (n && H5Dread(ds.get(), mem.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) < 0) return {};
  std::vector<std::string> out;
  for (int64_t i = 0; i < n; ++i) out.emplace_back(&buf[i * width], strnlen(&buf[i * width], width));
  return out;
}

}  // namespace tessera::ckpt
