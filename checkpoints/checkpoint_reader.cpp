// CheckpointReader: a checkpoint's metadata, shard checks and slice reads through index.h5.

#include <cstdio>
#include <filesystem>

#include "checkpoints/checkpoint.h"
#include "checkpoints/checkpoint_internal.h"
#include "model/init.h"
#include "runtime/error.h"

namespace tessera {
namespace fs = std::filesystem;
using namespace ckpt;

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
  h5::read_string_attr(f, "loss_window", meta_.loss_window);
  h5::read_string_attr(f, "data_skips", meta_.data_skips);
  if (H5Lexists(f, "shards", H5P_DEFAULT) <= 0) throw UserError(index + ": the shard table is missing");
  h5::Handle g(H5Gopen2(f, "shards", H5P_DEFAULT), H5Gclose);
  const auto files = read_strings(g.get(), "file");
  const auto ranks = read_vector<int64_t>(g.get(), "rank", H5T_NATIVE_INT64);
  const auto bytes = read_vector<int64_t>(g.get(), "bytes", H5T_NATIVE_INT64);
  const auto crcs = read_vector<uint32_t>(g.get(), "crc32", H5T_NATIVE_UINT32);
  if (files.size() != ranks.size() || files.size() != bytes.size() || files.size() != crcs.size())
    throw UserError(index + ": the shard table is damaged");
  for (size_t i = 0; i < files.size(); ++i) shards_.push_back({files[i], ranks[i], bytes[i], crcs[i]});
  if (H5Lexists(f, "pieces", H5P_DEFAULT) > 0) {
    h5::Handle p(H5Gopen2(f, "pieces", H5P_DEFAULT), H5Gclose);
    const auto groups = read_strings(p.get(), "group");
    const auto tensors = read_strings(p.get(), "tensor");
    const auto shard = read_vector<int64_t>(p.get(), "shard", H5T_NATIVE_INT64);
    const auto offset = read_vector<int64_t>(p.get(), "offset", H5T_NATIVE_INT64);
    const auto start = read_all_ints(p.get(), "start");
    const auto count = read_all_ints(p.get(), "count");
    const size_t n = groups.size();
    bool ok = tensors.size() == n && shard.size() == n && offset.size() == n &&
              start.size() == 4 * n && count.size() == 4 * n;
    for (size_t i = 0; ok && i < n; ++i) {
      StoredPiece piece{shard[i], offset[i], {}, {}};
      for (int d = 0; d < 4; ++d) piece.start[d] = start[4 * i + d], piece.count[d] = count[4 * i + d];
      ok = piece.shard >= 0 && piece.shard < static_cast<int64_t>(shards_.size()) && piece.offset >= 0;
      pieces_[groups[i] + "/" + tensors[i]].push_back(piece);
    }
    if (!ok) throw UserError(index + ": the piece table is damaged");
  }
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

std::string CheckpointReader::verify_shard(size_t i) const { return verify_shards({i}).front(); }

std::string CheckpointReader::checksum_line(size_t i, uint32_t crc) const {
  const ShardFile& s = shards_[i];
  if (crc == s.crc32) return "";
  char msg[96];
  std::snprintf(msg, sizeof msg, ": shard fails its checksum (crc32 %08x, index says %08x)",
                static_cast<unsigned>(crc), static_cast<unsigned>(s.crc32));
  return dir_ + "/" + s.file + msg;
}

std::string CheckpointReader::first_problem(bool checksums) const {
  for (size_t i = 0; i < shards_.size(); ++i)
    if (std::string e = check_shard_file(i); !e.empty()) return e;
  if (!checksums) return "";
  std::vector<size_t> all(shards_.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  for (const std::string& e : verify_shards(all))
    if (!e.empty()) return e;
  return "";
}

void CheckpointReader::load_parameters(Device& dev, ParamRegistry& registry) const {
  for (Param& p : registry.all()) {
    std::vector<double> host(p.value.numel());
    read("model", p, 0, p.value.numel(), host.data(), DType::f64, 0);
    param_upload(dev, p, host.data());
  }
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

void CheckpointReader::check_tensor(const std::string& group, const Param& p) const {
  const std::string name = group + "/" + p.name;
  if (!has(group, p.name)) throw UserError(dir_ + ": tensor " + name + " is missing (a different model?)");
  const h5::QuietErrors quiet;
  h5::Handle ds(H5Dopen2(static_cast<hid_t>(file_), name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.ok()) throw UserError(dir_ + ": cannot open tensor " + name);
  const Shape stored = dataset_shape(ds.get());
  if (!(stored == p.global_shape))
    throw UserError(dir_ + ": tensor " + name + " is " + stored.str() + " in the checkpoint, the model's is " +
                    p.global_shape.str() + " (the [model] config differs from the one that wrote it)");
}

void CheckpointReader::read(const std::string& group, const Param& p, int64_t lo, int64_t hi,
                            void* buf, DType buf_dtype, int64_t buf_offset) const {
  read_slices({SliceRead{group, &p, lo, hi, buf, buf_dtype, buf_offset}}, {});
}

// Through the index's virtual datasets, piece by piece: for checkpoints without a piece table.
std::vector<std::string> CheckpointReader::read_slices_hdf5(
    const std::vector<SliceRead>& reads, const std::vector<size_t>& verify,
    const std::function<void(size_t)>& read_done) const {
  for (size_t i = 0; i < reads.size(); ++i) {
    const SliceRead& r = reads[i];
    const std::string name = r.group + "/" + r.param->name;
    check_tensor(r.group, *r.param);
    const h5::QuietErrors quiet;
    h5::Handle ds(H5Dopen2(static_cast<hid_t>(file_), name.c_str(), H5P_DEFAULT), H5Dclose);
    h5::Handle file_space(H5Dget_space(ds.get()), H5Sclose);
    const bool f64 = r.buf_dtype == DType::f64;
    const size_t elem = f64 ? 8 : 4;
    for (const SliceCopy& s : param_slices(*r.param, r.lo, r.hi, r.buf_offset)) {
      hsize_t box[4], start[4], count[4], gstart[4];
      for (int d = 0; d < s.rank; ++d)
        box[d] = s.box_shape[d], start[d] = s.box_start[d], count[d] = s.count[d], gstart[d] = s.global_start[d];
      h5::Handle mem(H5Screate_simple(s.rank, box, nullptr), H5Sclose);
      H5Sselect_hyperslab(mem.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
      H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, gstart, nullptr, count, nullptr);
      char* dst = static_cast<char*>(r.buf) + s.buf_offset * elem;
      if (H5Dread(ds.get(), f64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT, mem.get(), file_space.get(),
                  H5P_DEFAULT, dst) < 0)
        throw UserError(dir_ + ": cannot read tensor " + name + " (a shard is missing or corrupted)");
    }
    if (read_done) read_done(i);
  }
  std::vector<std::string> problems;
  for (size_t i : verify) problems.push_back(verify_shard(i));
  return problems;
}

}  // namespace tessera
