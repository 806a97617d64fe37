#include "checkpoints/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "checkpoints/failpoint.h"
#include "checkpoints/hdf5.h"
#include "runtime/error.h"

namespace tessera {
namespace fs = std::filesystem;
namespace {

constexpr const char* kFormat = "tessera-checkpoint";
constexpr const char* kShardFormat = "tessera-checkpoint-shard";
// Index groups and the shard group each one maps onto. The model's values are its master
// weights (the working copy is their rounding), so model/<name> and optim/master/<name> are two
// names for the same stored elements.
const std::pair<const char*, const char*> kIndexGroups[] = {
    {"model", "master"},
    {"optim/master", "master"},
    {"optim/exp_avg", "exp_avg"},
    {"optim/exp_avg_sq", "exp_avg_sq"},
};

std::string os_reason() { return std::strerror(errno); }

hid_t file_type(const std::string& dtype) { return dtype == "f64" ? H5T_IEEE_F64LE : H5T_IEEE_F32LE; }

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

// Syncs `path`, then reads it back for its size and CRC-32.
void sync_and_checksum(const std::string& path, int64_t& bytes, uint32_t& crc) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw UserError(path + ": cannot open (" + os_reason() + ")");
  if (::fsync(fd) != 0) {
    const std::string why = os_reason();
    ::close(fd);
    throw UserError(path + ": cannot sync to disk (" + why + ")");
  }
  std::vector<unsigned char> buf(8 << 20);
  uLong c = crc32(0L, Z_NULL, 0);
  bytes = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      const std::string why = os_reason();
      ::close(fd);
      throw UserError(path + ": cannot read back (" + why + ")");
    }
    if (n == 0) break;
    c = crc32(c, buf.data(), static_cast<uInt>(n));
    bytes += n;
  }
  ::close(fd);
  crc = static_cast<uint32_t>(c);
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

template <typename T>
void write_vector(hid_t loc, const char* name, hid_t file_t, hid_t mem_t, const std::vector<T>& v) {
  const hsize_t n = v.size();
  h5::Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  h5::Handle ds(H5Dcreate2(loc, name, file_t, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  TS_CHECK_HDF5(ds.get());
  if (n) TS_CHECK_HDF5(H5Dwrite(ds.get(), mem_t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()));
}

template <typename T>
std::vector<T> read_vector(hid_t loc, const char* name, hid_t mem_t) {
  if (H5Lexists(loc, name, H5P_DEFAULT) <= 0) return {};
  h5::Handle ds(H5Dopen2(loc, name, H5P_DEFAULT), H5Dclose);
  std::vector<T> v(dataset_shape(ds.get())[0]);
  if (!v.empty() && H5Dread(ds.get(), mem_t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) < 0) return {};
  return v;
}

// One stored piece of a global tensor: dataset `dset` of shard `file`.
struct Mapping {
  std::string file, dset;
  std::vector<int64_t> start, count;
};
struct Mapped {
  Shape shape;
  std::vector<Mapping> pieces;
};

// Reads every shard's own description: group -> tensor -> pieces.
std::map<std::string, std::map<std::string, Mapped>> read_mappings(const std::string& dir,
                                                                   const std::vector<ShardFile>& shards) {
  std::map<std::string, std::map<std::string, Mapped>> out;
  for (const ShardFile& s : shards) {
    h5::Handle f(H5Fopen((dir + "/" + s.file).c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
    TS_CHECK_HDF5(f.get());
    for (const char* group : {"master", "exp_avg", "exp_avg_sq"}) {
      if (H5Lexists(f.get(), group, H5P_DEFAULT) <= 0) continue;
      h5::Handle g(H5Gopen2(f.get(), group, H5P_DEFAULT), H5Gclose);
      for (const std::string& tensor : link_names(g.get())) {
        h5::Handle t(H5Gopen2(g.get(), tensor.c_str(), H5P_DEFAULT), H5Gclose);
        Mapped& m = out[group][tensor];
        m.shape = to_shape(h5::read_ints_attr(t.get(), "global_shape"));
        for (const std::string& piece : link_names(t.get())) {
          h5::Handle ds(H5Dopen2(t.get(), piece.c_str(), H5P_DEFAULT), H5Dclose);
          m.pieces.push_back({s.file, std::string("/") + group + "/" + tensor + "/" + piece,
                              h5::read_ints_attr(ds.get(), "global_start"),
                              from_shape(dataset_shape(ds.get()))});
        }
      }
    }
  }
  return out;
}

void write_index(const std::string& dir, const CheckpointMeta& meta, const std::vector<ShardFile>& shards) {
  const std::string path = dir + "/index.h5";
  const auto mappings = read_mappings(dir, shards);
  h5::Handle f(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  if (!f.ok()) throw UserError(path + ": cannot create (" + os_reason() + ")");
  const hid_t root = f.get();
  h5::write_string_attr(root, "format", kFormat);
  h5::write_int_attr(root, "format_version", kCheckpointFormatVersion);
  h5::write_string_attr(root, "tessera_version", meta.tessera_version);
  h5::write_string_attr(root, "git_commit", meta.git_commit);
  h5::write_int_attr(root, "step", meta.step);
  h5::write_int_attr(root, "tokens", meta.tokens);
  h5::write_int_attr(root, "samples", meta.samples);
  h5::write_int_attr(root, "seed", meta.seed);
  h5::write_string_attr(root, "rng", "philox4x32-10, counter-based: every random number is keyed by (train.seed, step, sample, site), so (seed, step) is the whole RNG state");
  h5::write_string_attr(root, "dtype", meta.dtype);
  h5::write_string_attr(root, "config", meta.config_toml);
  h5::write_string_attr(root, "layout", meta.layout);
  h5::write_ints_attr(root, "layout_world_tp_pp_dp_zero_vstages_sp", meta.layout_ints);
  h5::write_int_attr(root, "has_optimizer", meta.has_optimizer ? 1 : 0);
  {
    h5::Handle g(H5Gcreate2(root, "shards", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    std::vector<std::string> files;
    std::vector<int64_t> ranks, bytes;
    std::vector<uint32_t> crcs;
    for (const ShardFile& s : shards) {
      files.push_back(s.file);
      ranks.push_back(s.rank);
      bytes.push_back(s.bytes);
      crcs.push_back(s.crc32);
    }
    write_strings(g.get(), "file", files);
    write_vector(g.get(), "rank", H5T_STD_I64LE, H5T_NATIVE_INT64, ranks);
    write_vector(g.get(), "bytes", H5T_STD_I64LE, H5T_NATIVE_INT64, bytes);
    write_vector(g.get(), "crc32", H5T_STD_U32LE, H5T_NATIVE_UINT32, crcs);
  }
  const double nan = std::nan("");
  for (const auto& [index_group, shard_group] : kIndexGroups) {
    const auto it = mappings.find(shard_group);
    if (it == mappings.end()) continue;
    h5::Handle g = h5::create_groups(root, index_group);
    for (const auto& [tensor, m] : it->second) {
      hsize_t dims[4];
      for (int d = 0; d < m.shape.rank; ++d) dims[d] = m.shape[d];
      h5::Handle vspace(H5Screate_simple(m.shape.rank, dims, nullptr), H5Sclose);
      h5::Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
      TS_CHECK_HDF5(H5Pset_fill_value(dcpl.get(), H5T_NATIVE_DOUBLE, &nan));
      int64_t covered = 0;
      for (const Mapping& p : m.pieces) {
        hsize_t start[4], count[4];
        int64_t n = 1;
        for (int d = 0; d < m.shape.rank; ++d) start[d] = p.start[d], count[d] = p.count[d], n *= p.count[d];
        covered += n;
        TS_CHECK_HDF5(H5Sselect_hyperslab(vspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr));
        h5::Handle src(H5Screate_simple(m.shape.rank, count, nullptr), H5Sclose);
        TS_CHECK_HDF5(H5Pset_virtual(dcpl.get(), vspace.get(), p.file.c_str(), p.dset.c_str(), src.get()));
      }
      TS_ASSERT(covered == m.shape.numel(), "checkpoint pieces do not cover tensor " + tensor);
      H5Sselect_all(vspace.get());
      h5::Handle ds(H5Dcreate2(g.get(), tensor.c_str(), file_type(meta.dtype), vspace.get(),
                               H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), H5Dclose);
      TS_CHECK_HDF5(ds.get());
    }
  }
  f.reset();
}

}  // namespace

int64_t ShardData::payload_bytes() const {
  int64_t n = 0;
  for (const auto& b : buffers) n += static_cast<int64_t>(b.size());
  return n;
}

std::string checkpoint_dir_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step_%08lld", static_cast<long long>(step));
  return buf;
}

ShardFile shard_write(const std::string& path, int64_t rank, const ShardData& data) {
  failpoint("shard-begin", rank);
  const std::string dir = fs::path(path).parent_path().string();
  struct statvfs vfs;
  const int64_t need = data.payload_bytes();  // an upper bound for what is written
  if (::statvfs(dir.c_str(), &vfs) == 0 &&
      static_cast<double>(vfs.f_bavail) * vfs.f_frsize < static_cast<double>(need))
    throw UserError(dir + ": not enough free disk space for a checkpoint shard (" +
                    std::to_string(need >> 20) + " MiB)");
  const h5::QuietErrors quiet;
  {
    h5::Handle f(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
    if (!f.ok()) throw UserError(path + ": cannot create (" + os_reason() + ")");
    h5::write_string_attr(f.get(), "format", kShardFormat);
    h5::write_int_attr(f.get(), "format_version", kCheckpointFormatVersion);
    h5::write_int_attr(f.get(), "rank", rank);
    h5::write_string_attr(f.get(), "dtype", data.dtype);
    const bool f64 = data.dtype == "f64";
    const size_t elem = f64 ? 8 : 4;
    for (size_t g = 0; g < data.groups.size(); ++g) {
      for (const ShardData::Entry& e : data.entries) {
        h5::Handle t = h5::create_groups(f.get(), data.groups[g] + "/" + e.tensor);
        h5::write_ints_attr(t.get(), "global_shape", from_shape(e.global_shape));
        for (size_t k = 0; k < e.slices.size(); ++k) {
          const SliceCopy& s = e.slices[k];
          hsize_t box[4], start[4], count[4];
          for (int d = 0; d < s.rank; ++d) box[d] = s.box_shape[d], start[d] = s.box_start[d], count[d] = s.count[d];
          h5::Handle mem(H5Screate_simple(s.rank, box, nullptr), H5Sclose);
          H5Sselect_hyperslab(mem.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
          h5::Handle space(H5Screate_simple(s.rank, count, nullptr), H5Sclose);
          h5::Handle ds(H5Dcreate2(t.get(), std::to_string(k).c_str(), file_type(data.dtype),
                                   space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
          if (!ds.ok()) throw UserError(path + ": cannot write (" + os_reason() + ")");
          h5::write_ints_attr(ds.get(), "global_start",
                              std::vector<int64_t>(s.global_start.begin(), s.global_start.begin() + s.rank));
          const char* src = data.buffers[g].data() + s.buf_offset * elem;
          if (H5Dwrite(ds.get(), f64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT, mem.get(), H5S_ALL,
                       H5P_DEFAULT, src) < 0)
            throw UserError(path + ": cannot write (" + os_reason() + ")");
        }
      }
    }
    if (H5Fflush(f.get(), H5F_SCOPE_LOCAL) < 0) throw UserError(path + ": cannot write (" + os_reason() + ")");
  }
  failpoint("shard-written", rank);
  ShardFile out;
  out.file = fs::path(path).filename().string();
  out.rank = rank;
  sync_and_checksum(path, out.bytes, out.crc32);
  failpoint("shard-synced", rank);
  return out;
}

void checkpoint_commit(const std::string& root, const std::string& partial_dir,
                       const std::string& final_dir, const CheckpointMeta& meta,
                       const std::vector<ShardFile>& shards, int64_t keep, int64_t keep_every) {
  failpoint("index-begin", 0);
  {
    const h5::QuietErrors quiet;
    write_index(partial_dir, meta, shards);
  }
  sync_path(partial_dir + "/index.h5");
  sync_path(partial_dir);
  failpoint("index-written", 0);
  std::error_code ec;
  if (fs::exists(final_dir)) fs::remove_all(final_dir, ec);  // an older run's same step
  fs::rename(partial_dir, final_dir, ec);
  if (ec) throw UserError(final_dir + ": cannot rename the finished checkpoint (" + ec.message() + ")");
  sync_path(root);
  failpoint("renamed", 0);
  {
    const std::string tmp = root + "/latest.tmp";
    std::ofstream out(tmp, std::ios::trunc);
    out << fs::path(final_dir).filename().string() << "\n";
    out.close();
    if (!out) throw UserError(tmp + ": cannot write");
    sync_path(tmp);
    fs::rename(tmp, root + "/latest", ec);
    if (ec) throw UserError(root + "/latest: cannot replace (" + ec.message() + ")");
    sync_path(root);
  }
  failpoint("latest-written", 0);
  // Older checkpoints go only now that the new one is complete.
  const std::vector<std::string> all = checkpoint_list(root);
  int64_t kept = 0;
  for (const std::string& d : all) {
    const int64_t step = std::stoll(fs::path(d).filename().string().substr(5));
    const bool newest = kept < keep;
    if (newest) ++kept;
    if (newest || (keep_every > 0 && step % keep_every == 0)) continue;
    fs::remove_all(d, ec);
  }
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() > 8 && name.compare(name.size() - 8, 8, ".partial") == 0) fs::remove_all(e.path(), ec);
  }
}

std::vector<std::string> checkpoint_list(const std::string& root) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() != 13 || name.rfind("step_", 0) != 0) continue;
    if (!std::all_of(name.begin() + 5, name.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    if (!fs::exists(e.path() / "index.h5")) continue;
    found.emplace_back(std::stoll(name.substr(5)), e.path().string());
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(std::move(f.second));
  return out;
}

CheckpointReader::CheckpointReader(const std::string& dir) : dir_(dir) {
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
  if (!fs::is_directory(dir_)) throw UserError(dir_ + ": no such checkpoint directory");
  const std::string index = dir_ + "/index.h5";
  if (!fs::exists(index))
    throw UserError(dir_ + ": not a complete checkpoint (index.h5 is missing; an interrupted save?)");
  const h5::QuietErrors quiet;
  file_ = H5Fopen(index.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file_ < 0) throw UserError(index + ": not a readable HDF5 file (truncated or corrupted?)");
  const hid_t f = static_cast<hid_t>(file_);
  std::string format;
  if (!h5::read_string_attr(f, "format", format) || format != kFormat)
    throw UserError(index + ": not a tessera checkpoint index (attribute format != " + kFormat + ")");
  const int64_t version = h5::read_int_attr(f, "format_version");
  if (version != kCheckpointFormatVersion)
    throw UserError(index + ": checkpoint format version " + std::to_string(version) +
                    " is not supported (this build reads version " +
                    std::to_string(kCheckpointFormatVersion) + ")");
  h5::read_string_attr(f, "tessera_version", meta_.tessera_version);
  h5::read_string_attr(f, "git_commit", meta_.git_commit);
  meta_.step = h5::read_int_attr(f, "step");
  meta_.tokens = h5::read_int_attr(f, "tokens");
  meta_.samples = h5::read_int_attr(f, "samples");
  meta_.seed = h5::read_int_attr(f, "seed");
  h5::read_string_attr(f, "dtype", meta_.dtype);
  h5::read_string_attr(f, "config", meta_.config_toml);
  h5::read_string_attr(f, "layout", meta_.layout);
  meta_.layout_ints = h5::read_ints_attr(f, "layout_world_tp_pp_dp_zero_vstages_sp");
  meta_.has_optimizer = h5::read_int_attr(f, "has_optimizer") != 0;
  if (H5Lexists(f, "shards", H5P_DEFAULT) <= 0) throw UserError(index + ": the shard table is missing");
  h5::Handle g(H5Gopen2(f, "shards", H5P_DEFAULT), H5Gclose);
  const auto files = read_strings(g.get(), "file");
  const auto ranks = read_vector<int64_t>(g.get(), "rank", H5T_NATIVE_INT64);
  const auto bytes = read_vector<int64_t>(g.get(), "bytes", H5T_NATIVE_INT64);
  const auto crcs = read_vector<uint32_t>(g.get(), "crc32", H5T_NATIVE_UINT32);
  if (files.size() != ranks.size() || files.size() != bytes.size() || files.size() != crcs.size())
    throw UserError(index + ": the shard table is damaged");
  for (size_t i = 0; i < files.size(); ++i) shards_.push_back({files[i], ranks[i], bytes[i], crcs[i]});
}

CheckpointReader::~CheckpointReader() {
  if (file_ >= 0) H5Fclose(static_cast<hid_t>(file_));
}

std::string CheckpointReader::check_shard_file(size_t i) const {
  const ShardFile& s = shards_[i];
  const std::string path = dir_ + "/" + s.file;
  std::error_code ec;
  if (!fs::exists(path, ec)) return path + ": shard file is missing";
  const auto size = static_cast<int64_t>(fs::file_size(path, ec));
  if (ec) return path + ": cannot read (" + ec.message() + ")";
  if (size != s.bytes)
    return path + ": shard is " + std::to_string(size) + " bytes, the index recorded " +
           std::to_string(s.bytes) + (size < s.bytes ? " (truncated)" : "");
  return "";
}

std::string CheckpointReader::verify_shard(size_t i) const {
  if (std::string e = check_shard_file(i); !e.empty()) return e;
  const ShardFile& s = shards_[i];
  const std::string path = dir_ + "/" + s.file;
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return path + ": cannot open (" + os_reason() + ")";
  std::vector<unsigned char> buf(8 << 20);
  uLong c = crc32(0L, Z_NULL, 0);
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      const std::string why = os_reason();
      ::close(fd);
      return path + ": cannot read (" + why + ")";
    }
    if (n == 0) break;
    c = crc32(c, buf.data(), static_cast<uInt>(n));
  }
  ::close(fd);
  if (static_cast<uint32_t>(c) != s.crc32) {
    char msg[96];
    std::snprintf(msg, sizeof msg, ": shard fails its checksum (crc32 %08x, index says %08x)",
                  static_cast<unsigned>(c), static_cast<unsigned>(s.crc32));
    return path + msg;
  }
  return "";
}

std::vector<CheckpointReader::TensorInfo> CheckpointReader::tensors(const std::string& group) const {
  const hid_t f = static_cast<hid_t>(file_);
  std::vector<TensorInfo> out;
  const h5::QuietErrors quiet;
  if (!path_exists(f, group)) return out;
  h5::Handle g(H5Gopen2(f, group.c_str(), H5P_DEFAULT), H5Gclose);
  for (const std::string& name : link_names(g.get())) {
    h5::Handle ds(H5Dopen2(g.get(), name.c_str(), H5P_DEFAULT), H5Dclose);
    if (!ds.ok()) continue;
    h5::Handle type(H5Dget_type(ds.get()), H5Tclose);
    TensorInfo t;
    t.name = name;
    t.shape = dataset_shape(ds.get());
    const size_t size = H5Tget_size(type.get());
    t.dtype = size == 8 ? "f64" : size == 4 ? "f32" : "?";
    t.bytes = t.shape.numel() * static_cast<int64_t>(size);
    out.push_back(t);
  }
  return out;
}

bool CheckpointReader::has(const std::string& group, const std::string& tensor) const {
  const h5::QuietErrors quiet;
  return path_exists(static_cast<hid_t>(file_), group + "/" + tensor);
}

void CheckpointReader::read(const std::string& group, const Param& p, int64_t lo, int64_t hi,
                            void* buf, DType buf_dtype, int64_t buf_offset) const {
  const std::string name = group + "/" + p.name;
  if (!has(group, p.name)) throw UserError(dir_ + ": tensor " + name + " is missing (a different model?)");
  const h5::QuietErrors quiet;
  h5::Handle ds(H5Dopen2(static_cast<hid_t>(file_), name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.ok()) throw UserError(dir_ + ": cannot open tensor " + name);
  const Shape stored = dataset_shape(ds.get());
  if (!(stored == p.global_shape))
    throw UserError(dir_ + ": tensor " + name + " is " + stored.str() + " in the checkpoint, the model's is " +
                    p.global_shape.str() + " (the [model] config differs from the one that wrote it)");
  h5::Handle file_space(H5Dget_space(ds.get()), H5Sclose);
  const bool f64 = buf_dtype == DType::f64;
  TS_ASSERT(f64 || buf_dtype == DType::f32, "checkpoint reads into f32 or f64 buffers");
  const size_t elem = f64 ? 8 : 4;
  for (const SliceCopy& s : param_slices(p, lo, hi, buf_offset)) {
    hsize_t box[4], start[4], count[4], gstart[4];
    for (int d = 0; d < s.rank; ++d)
      box[d] = s.box_shape[d], start[d] = s.box_start[d], count[d] = s.count[d], gstart[d] = s.global_start[d];
    h5::Handle mem(H5Screate_simple(s.rank, box, nullptr), H5Sclose);
    H5Sselect_hyperslab(mem.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
    H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, gstart, nullptr, count, nullptr);
    char* dst = static_cast<char*>(buf) + s.buf_offset * elem;
    if (H5Dread(ds.get(), f64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT, mem.get(), file_space.get(),
                H5P_DEFAULT, dst) < 0)
      throw UserError(dir_ + ": cannot read tensor " + name + " (a shard is missing or corrupted)");
  }
}

}  // namespace tessera
