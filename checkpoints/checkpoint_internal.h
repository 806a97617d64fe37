// What the checkpoint writer and reader share: format names, file syncing and checksums, and
// HDF5 helpers for tables and shapes. Internal to checkpoints/.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "checkpoints/hdf5.h"
#include "runtime/error.h"
#include "runtime/tensor.h"

namespace tessera::ckpt {

inline constexpr const char* kFormat = "tessera-checkpoint";
inline constexpr const char* kShardFormat = "tessera-checkpoint-shard";

// Index groups and the shard group each one maps onto. The model's values are its master
// weights (the working copy is their rounding), so model/<name> and optim/master/<name> are two
// names for the same stored elements.
inline constexpr std::pair<const char*, const char*> kIndexGroups[] = {
    {"model", "master"},
    {"optim/master", "master"},
    {"optim/exp_avg", "exp_avg"},
    {"optim/exp_avg_sq", "exp_avg_sq"},
};

std::string os_reason();  // strerror(errno)
// Syncs a file or directory to disk; UserError naming it on failure.
void sync_path(const std::string& path);
// Size and zlib CRC-32 of a whole file, read through the page cache; "" or the problem in one
// line. (Checkpoints with a piece table are checked by CheckpointReader's direct reader.)
std::string file_crc32(const std::string& path, int64_t& bytes, uint32_t& crc);

std::vector<std::string> link_names(hid_t group);
bool path_exists(hid_t file, const std::string& path);  // every component of "a/b/c"
Shape dataset_shape(hid_t ds);
Shape to_shape(const std::vector<int64_t>& v);
std::vector<int64_t> from_shape(const Shape& s);
void write_strings(hid_t loc, const char* name, const std::vector<std::string>& values);
std::vector<std::string> read_strings(hid_t loc, const char* name);

template <typename T>
void write_vector(hid_t loc, const char* name, hid_t file_t, hid_t mem_t, const std::vector<T>& v) {
  const hsize_t n = v.size();
  h5::Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  h5::Handle ds(H5Dcreate2(loc, name, file_t, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  TS_CHECK_HDF5(ds.get());
  if (n) TS_CHECK_HDF5(H5Dwrite(ds.get(), mem_t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()));
}

// An int64 table of `columns` columns, `values` row by row.
void write_matrix(hid_t loc, const char* name, hsize_t columns, const std::vector<int64_t>& values);
// Every element of an int64 dataset, row by row ({} when absent or unreadable).
std::vector<int64_t> read_all_ints(hid_t loc, const char* name);

template <typename T>
std::vector<T> read_vector(hid_t loc, const char* name, hid_t mem_t) {
  if (H5Lexists(loc, name, H5P_DEFAULT) <= 0) return {};
  h5::Handle ds(H5Dopen2(loc, name, H5P_DEFAULT), H5Dclose);
  std::vector<T> v(dataset_shape(ds.get())[0]);
  if (!v.empty() && H5Dread(ds.get(), mem_t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) < 0) return {};
  return v;
}

}  // namespace tessera::ckpt
