#include "checkpoints/checkpoint.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include "checkpoints/checkpoint_internal.h"
#include "checkpoints/direct_io.h"
#include "checkpoints/failpoint.h"
#include "checkpoints/hdf5.h"
#include "runtime/error.h"

namespace tessera {
namespace fs = std::filesystem;
using namespace ckpt;
namespace {

hid_t file_type(const std::string& dtype) { return dtype == "f64" ? H5T_IEEE_F64LE : H5T_IEEE_F32LE; }

// Pieces of at least this many bytes start at a multiple of kDirectAlign in their shard file, so
// that all but their last partial block go to the disk with direct writes.
constexpr hsize_t kAlignPiecesFrom = 64 << 10;

// Where slice `s` starts in its buffer, in elements from s.buf_offset, when its elements are one
// contiguous run there (whole trailing dimensions after the first one it cuts); else -1.
int64_t contiguous_offset(const SliceCopy& s) {
  int d = 0;
  while (d < s.rank - 1 && s.count[d] == 1) ++d;  // leading single rows
  for (int e = d + 1; e < s.rank; ++e)
    if (s.count[e] != s.box_shape[e] || s.box_start[e] != 0) return -1;
  int64_t at = 0, stride = 1;
  for (int e = s.rank - 1; e >= 0; --e) {
    at += s.box_start[e] * stride;
    stride *= s.box_shape[e];
  }
  return at;
}

// One stored piece of a global tensor: dataset `dset` of shard `file` (row `shard` of the shard
// table), its elements at byte `offset` of the file (-1: not one contiguous unfiltered block).
struct Mapping {
  std::string file, dset;
  std::vector<int64_t> start, count;
  int64_t shard = 0, offset = -1;
};
struct Mapped {
  Shape shape;
  std::vector<Mapping> pieces;
};

// Reads every shard's own description: group -> tensor -> pieces.
std::map<std::string, std::map<std::string, Mapped>> read_mappings(const std::string& dir,
                                                                   const std::vector<ShardFile>& shards) {
  std::map<std::string, std::map<std::string, Mapped>> out;
  for (size_t i = 0; i < shards.size(); ++i) {
    const ShardFile& s = shards[i];
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
          h5::Handle dcpl(H5Dget_create_plist(ds.get()), H5Pclose);
          const haddr_t addr = H5Dget_offset(ds.get());
          const bool plain = H5Pget_layout(dcpl.get()) == H5D_CONTIGUOUS &&
                             H5Pget_nfilters(dcpl.get()) == 0 && addr != HADDR_UNDEF;
          m.pieces.push_back({s.file, std::string("/") + group + "/" + tensor + "/" + piece,
                              h5::read_ints_attr(ds.get(), "global_start"),
                              from_shape(dataset_shape(ds.get())), static_cast<int64_t>(i),
                              plain ? static_cast<int64_t>(addr) : -1});
        }
      }
    }
  }
  return out;
}

// /pieces: where every stored piece's elements sit in its shard file, so that a reader can
// fetch them with plain sequential reads instead of through the virtual datasets. Written only
// when every piece is one contiguous, unfiltered block (shard_write makes them so).
void write_piece_table(hid_t root, const std::map<std::string, std::map<std::string, Mapped>>& mappings) {
  std::vector<std::string> groups, tensors;
  std::vector<int64_t> shard, offset, start, count;  // start, count: (n, 4), unused dimensions 0, 1
  for (const auto& [group, by_tensor] : mappings)
    for (const auto& [tensor, m] : by_tensor)
      for (const Mapping& p : m.pieces) {
        if (p.offset < 0) return;
        groups.push_back(group);
        tensors.push_back(tensor);
        shard.push_back(p.shard);
        offset.push_back(p.offset);
        for (int d = 0; d < 4; ++d) {
          start.push_back(d < m.shape.rank ? p.start[d] : 0);
          count.push_back(d < m.shape.rank ? p.count[d] : 1);
        }
      }
  h5::Handle g(H5Gcreate2(root, "pieces", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
  TS_CHECK_HDF5(g.get());
  write_strings(g.get(), "group", groups);
  write_strings(g.get(), "tensor", tensors);
  write_vector(g.get(), "shard", H5T_STD_I64LE, H5T_NATIVE_INT64, shard);
  write_vector(g.get(), "offset", H5T_STD_I64LE, H5T_NATIVE_INT64, offset);
  write_matrix(g.get(), "start", 4, start);
  write_matrix(g.get(), "count", 4, count);
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
  if (!meta.loss_window.empty()) h5::write_string_attr(root, "loss_window", meta.loss_window);
  if (!meta.data_skips.empty()) h5::write_string_attr(root, "data_skips", meta.data_skips);
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
  write_piece_table(root, mappings);
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
  if (source)
    for (const Entry& e : entries)
      for (const SliceCopy& s : e.slices) n += s.numel() * (dtype == "f64" ? 8 : 4);
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
  // An upper bound for what is written: the data, each piece's alignment and HDF5's structure.
  int64_t pieces = 0;
  for (const ShardData::Entry& e : data.entries) pieces += static_cast<int64_t>(e.slices.size());
  const int64_t need = data.payload_bytes() + static_cast<int64_t>(data.groups.size()) * pieces * (kDirectAlign + 1024);
  if (::statvfs(dir.c_str(), &vfs) == 0 &&
      static_cast<double>(vfs.f_bavail) * vfs.f_frsize < static_cast<double>(need))
    throw UserError(dir + ": not enough free disk space for a checkpoint shard (" +
                    std::to_string(need >> 20) + " MiB)");
  const h5::QuietErrors quiet;
  // HDF5 writes the file's structure and reserves every piece's bytes (aligned to kDirectAlign
  // when large); the pieces themselves are then written by write_blocks with direct I/O from
  // the staging buffers, and checksummed as they are copied, instead of going through HDF5's
  // buffered writes and a read-back for the checksum. A piece that is not one contiguous block
  // of its buffer (none today) goes through H5Dwrite.
  std::vector<FileBlock> blocks;
  {
    h5::Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
    TS_CHECK_HDF5(H5Pset_alignment(fapl.get(), kAlignPiecesFrom, kDirectAlign));
    h5::Handle f(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose);
    if (!f.ok()) throw UserError(path + ": cannot create (" + os_reason() + ")");
    h5::write_string_attr(f.get(), "format", kShardFormat);
    h5::write_int_attr(f.get(), "format_version", kCheckpointFormatVersion);
    h5::write_int_attr(f.get(), "rank", rank);
    h5::write_string_attr(f.get(), "dtype", data.dtype);
    const bool f64 = data.dtype == "f64";
    const size_t elem = f64 ? 8 : 4;
    // Contiguous and unfiltered: each piece is one block of the file, which the index records
    // and the reader fetches with plain reads (/pieces in index.h5). Allocated at creation and
    // never filled, so that HDF5 writes none of its bytes.
    h5::Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    TS_CHECK_HDF5(H5Pset_layout(dcpl.get(), H5D_CONTIGUOUS));
    TS_CHECK_HDF5(H5Pset_alloc_time(dcpl.get(), H5D_ALLOC_TIME_EARLY));
    TS_CHECK_HDF5(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER));
    for (size_t g = 0; g < data.groups.size(); ++g) {
      for (const ShardData::Entry& e : data.entries) {
        h5::Handle t = h5::create_groups(f.get(), data.groups[g] + "/" + e.tensor);
        h5::write_ints_attr(t.get(), "global_shape", from_shape(e.global_shape));
        for (size_t k = 0; k < e.slices.size(); ++k) {
          const SliceCopy& s = e.slices[k];
          hsize_t box[4], start[4], count[4];
          for (int d = 0; d < s.rank; ++d) box[d] = s.box_shape[d], start[d] = s.box_start[d], count[d] = s.count[d];
          h5::Handle space(H5Screate_simple(s.rank, count, nullptr), H5Sclose);
          h5::Handle ds(H5Dcreate2(t.get(), std::to_string(k).c_str(), file_type(data.dtype),
                                   space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), H5Dclose);
          if (!ds.ok()) throw UserError(path + ": cannot write (" + os_reason() + ")");
          h5::write_ints_attr(ds.get(), "global_start",
                              std::vector<int64_t>(s.global_start.begin(), s.global_start.begin() + s.rank));
          const int64_t contiguous_at = contiguous_offset(s);
          const haddr_t addr = H5Dget_offset(ds.get());
          if (s.numel() == 0) continue;
          if (data.source) {  // produced when written: every piece must be one block
            TS_ASSERT(data.groups.size() == 1 && contiguous_at >= 0 && addr != HADDR_UNDEF &&
                          std::endian::native == std::endian::little,
                      path + ": a streamed shard needs contiguous pieces");
            blocks.push_back({static_cast<int64_t>(addr), nullptr, s.numel() * static_cast<int64_t>(elem),
                              [&data, s, contiguous_at, elem] { return data.source(s) + contiguous_at * elem; }});
            continue;
          }
          const char* src = data.buffers[g].data() + s.buf_offset * elem;
          if (contiguous_at >= 0 && addr != HADDR_UNDEF && std::endian::native == std::endian::little) {
            blocks.push_back({static_cast<int64_t>(addr), src + contiguous_at * elem,
                              s.numel() * static_cast<int64_t>(elem), {}});
            continue;
          }
          h5::Handle mem(H5Screate_simple(s.rank, box, nullptr), H5Sclose);
          H5Sselect_hyperslab(mem.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
          if (H5Dwrite(ds.get(), f64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT, mem.get(), H5S_ALL,
                       H5P_DEFAULT, src) < 0)
            throw UserError(path + ": cannot write (" + os_reason() + ")");
        }
      }
    }
    if (H5Fclose(f.release()) < 0) throw UserError(path + ": cannot write (" + os_reason() + ")");
  }
  const WrittenFile written = write_blocks(path, std::move(blocks), [&] { failpoint("shard-written", rank); });
  ShardFile out;
  out.file = fs::path(path).filename().string();
  out.rank = rank;
  out.bytes = written.bytes;
  out.crc32 = written.crc32;
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

std::vector<std::string> checkpoint_list(const std::string& root, int64_t max_step) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() != 13 || name.rfind("step_", 0) != 0) continue;
    if (!std::all_of(name.begin() + 5, name.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    if (!fs::exists(e.path() / "index.h5")) continue;
    const int64_t step = std::stoll(name.substr(5));
    if (step <= max_step) found.emplace_back(step, e.path().string());
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(std::move(f.second));
  return out;
}
}  // namespace tessera
