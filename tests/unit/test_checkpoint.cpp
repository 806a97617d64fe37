// Checkpoint pieces and files without MPI: the flat-range-to-hyperslab arithmetic against a
// brute-force index map, a shard written under one sharding read back under others through the
// index's virtual datasets, corruption and truncation detection, and the memory a loading rank
// needs (its own slices, never a whole tensor).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <hdf5.h>
#include <zlib.h>

#include "checkpoints/checkpoint.h"
#include "checkpoints/crc32.h"
#include "checkpoints/direct_io.h"
#include "checkpoints/slices.h"
#include "model/init.h"
#include "runtime/error.h"

namespace tessera {
namespace {
namespace fs = std::filesystem;

// Flips the bits of the byte at `at` of file `path` (negative: from the end), size unchanged.
void flip_byte(const std::string& path, std::streamoff at) {
  if (at < 0) at += static_cast<std::streamoff>(fs::file_size(path));
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  char c = 0;
  f.seekg(at);
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x5a);
  f.seekp(at);
  f.write(&c, 1);
  ASSERT_TRUE(f.good()) << path;
}

Param make_param(const std::string& name, Shape global, int shard_dim, std::vector<int64_t> parts, int tp, int tp_rank) {
  Param p;
  p.name = name;
  p.global_shape = global;
  p.local_shape = global;
  p.shard_dim = shard_dim;  // kept with tp = 1 too (the identity slice): the spec says how it splits
  p.shard_parts = parts;
  if (shard_dim >= 0) {
    p.local_shape.dims[shard_dim] = global[shard_dim] / tp;
    p.shard_rank = tp_rank;
    p.shard_ranks = tp;
  }
  return p;
}

// The sharded dimension as `parts` equal parts.
Param make_param(const std::string& name, Shape global, int shard_dim, int64_t parts, int tp, int tp_rank) {
  std::vector<int64_t> sizes;
  if (shard_dim >= 0 && parts > 1) sizes.assign(parts, global[shard_dim] / parts);
  return make_param(name, global, shard_dim, sizes, tp, tp_rank);
}

// Global flat index of every element a piece covers, in the buffer order it reads/writes.
void expand(const SliceCopy& s, const Shape& global, std::vector<std::pair<int64_t, int64_t>>& out) {
  int64_t box_stride[4] = {1, 1, 1, 1}, g_stride[4] = {1, 1, 1, 1};
  for (int d = s.rank - 2; d >= 0; --d) {
    box_stride[d] = box_stride[d + 1] * s.box_shape[d + 1];
    g_stride[d] = g_stride[d + 1] * global[d + 1];
  }
  const int64_t n = s.numel();
  for (int64_t i = 0; i < n; ++i) {
    int64_t rem = i, buf = s.buf_offset, g = 0;
    for (int d = s.rank - 1; d >= 0; --d) {
      const int64_t k = rem % s.count[d];
      rem /= s.count[d];
      buf += (s.box_start[d] + k) * box_stride[d];
      g += (s.global_start[d] + k) * g_stride[d];
    }
    out.emplace_back(buf, g);
  }
}

TEST(CheckpointSlices, PiecesCoverAFlatRangeExactlyAndMapToGlobalIndices) {
  std::mt19937_64 rng(7);
  const Shape shapes[] = {{96}, {12, 8}, {24, 6}, {4, 6, 8}, {6, 4, 2, 3}};
  for (int trial = 0; trial < 400; ++trial) {
    const Shape g = shapes[trial % 5];
    const int sd = static_cast<int>(rng() % g.rank);
    // Equal parts (q | k | v of multi-head attention), or unequal ones (grouped-query: 2 q
    // heads per k/v head), or one part.
    const int kind = static_cast<int>(rng() % 3);
    std::vector<int64_t> parts;
    if (kind == 1 && g[sd] % 6 == 0) parts = {g[sd] / 3, g[sd] / 3, g[sd] / 3};
    if (kind == 2 && g[sd] % 8 == 0) parts = {g[sd] / 2, g[sd] / 4, g[sd] / 4};
    Param probe = make_param("t", g, sd, parts, 1, 0);
    const int tp = param_shard_divides(probe, 2) ? 2 : 1;
    const Param p = make_param("t", g, sd, parts, tp, static_cast<int>(rng() % tp));
    const int64_t n = p.local_shape.numel();
    const int64_t lo = static_cast<int64_t>(rng() % n), hi = lo + 1 + static_cast<int64_t>(rng() % (n - lo));
    std::vector<std::pair<int64_t, int64_t>> got;
    for (const SliceCopy& s : param_slices(p, lo, hi, 1000)) {
      for (int d = 0; d < s.rank; ++d) {
        ASSERT_GE(s.global_start[d], 0);
        ASSERT_LE(s.global_start[d] + s.count[d], g[d]) << "piece outside the global tensor";
      }
      expand(s, g, got);
    }
    ASSERT_EQ(static_cast<int64_t>(got.size()), hi - lo) << "trial " << trial;
    std::sort(got.begin(), got.end());
    // A rank's local part j is rows [rank * n_j / tp, (rank + 1) * n_j / tp) of global part j.
    if (!parts.empty() && tp == 2 && sd == 0 && g.rank == 2) {
      int64_t local = 0, global = 0;
      for (int64_t n : parts) {
        for (int64_t r = 0; r < n / 2; ++r)
          ASSERT_EQ(param_global_index(p, (local + r) * g[1]) / g[1], global + p.shard_rank * (n / 2) + r);
        local += n / 2, global += n;
      }
    }
    for (int64_t i = lo; i < hi; ++i) {
      ASSERT_EQ(got[i - lo].first, 1000 + (i - lo)) << "buffer element covered twice or never";
      ASSERT_EQ(got[i - lo].second, param_global_index(p, i)) << "trial " << trial << " element " << i;
    }
  }
}

class CheckpointFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("tessera_ckpt_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The global value of element g of tensor `t` in group `group`.
  static float value(int t, int group, int64_t g) { return static_cast<float>(t * 1000003 + group * 7919 + g) * 0.5f; }

  // Writes the tensors as `writers` tensor-parallel shards (each also split in two ZeRO-like
  // flat halves owned by different "ranks"), commits, and returns the checkpoint directory.
  std::string save(const std::vector<Param>& globals, int writers) {
    const std::string root = dir_.string(), partial = root + "/step_00000003.partial";
    fs::create_directories(partial);
    std::vector<ShardFile> files;
    int rank = 0;
    for (int w = 0; w < writers; ++w)
      for (int half = 0; half < 2; ++half, ++rank) {
        ShardData d;
        d.dtype = "f32";
        d.groups = {"master", "exp_avg", "exp_avg_sq"};
        d.buffers.assign(3, {});
        int64_t offset = 0;
        for (size_t t = 0; t < globals.size(); ++t) {
          const Param& g = globals[t];
          if (g.shard_dim < 0 && w > 0) continue;  // replicated: one owner
          const Param p = make_param(g.name, g.global_shape, g.shard_dim, g.shard_parts, writers, w);
          const int64_t n = p.local_shape.numel(), lo = half ? n / 2 : 0, hi = half ? n : n / 2;
          if (lo == hi) continue;
          d.entries.push_back({p.name, p.global_shape, param_slices(p, lo, hi, offset)});
          for (int grp = 0; grp < 3; ++grp) {
            d.buffers[grp].resize((offset + hi - lo) * 4);
            float* f = reinterpret_cast<float*>(d.buffers[grp].data()) + offset;
            for (int64_t i = lo; i < hi; ++i) f[i - lo] = value(static_cast<int>(t), grp, param_global_index(p, i));
          }
          offset += hi - lo;
        }
        files.push_back(shard_write(partial + "/shard_" + std::to_string(rank) + ".h5", rank, d));
      }
    CheckpointMeta meta;
    meta.step = 3;
    meta.dtype = "f32";
    checkpoint_commit(root, partial, root + "/step_00000003", meta, files, 2, 0);
    return root + "/step_00000003";
  }

  std::vector<Param> globals() const {
    return {make_param("qkv", {24, 8}, 0, 3, 1, 0), make_param("proj", {8, 12}, 1, 1, 1, 0),
            make_param("bias", {24}, 0, 1, 1, 0), make_param("ln", {8}, -1, 1, 1, 0)};
  }

  fs::path dir_;
};

TEST_F(CheckpointFiles, ReadsAnySliceOfTheGlobalTensorsWrittenUnderAnotherSharding) {
  const std::string ck = save(globals(), 2);
  EXPECT_EQ(checkpoint_list(dir_.string()), std::vector<std::string>{ck});
  const CheckpointReader r(ck);
  EXPECT_EQ(r.meta().step, 3);
  ASSERT_EQ(r.shards().size(), 4u);
  for (size_t i = 0; i < r.shards().size(); ++i) EXPECT_EQ(r.verify_shard(i), "");
  const char* groups[] = {"optim/master", "optim/exp_avg", "optim/exp_avg_sq"};
  const std::vector<Param> gl = globals();
  for (int tp : {1, 2, 4}) {
    for (int rank = 0; rank < tp; ++rank) {
      for (size_t t = 0; t < gl.size(); ++t) {
        const Param& g = gl[t];
        const bool splits = param_shard_divides(g, tp);
        const Param p = make_param(g.name, g.global_shape, g.shard_dim, g.shard_parts, splits ? tp : 1, splits ? rank : 0);
        const int64_t n = p.local_shape.numel(), lo = n / 3, hi = n - 1;  // an odd range
        for (int grp = 0; grp < 3; ++grp) {
          std::vector<float> buf(hi - lo + 2, -1.0f);
          r.read(groups[grp], p, lo, hi, buf.data(), DType::f32, 1);
          EXPECT_EQ(buf.front(), -1.0f);
          EXPECT_EQ(buf.back(), -1.0f);
          for (int64_t i = lo; i < hi; ++i)
            ASSERT_EQ(buf[1 + i - lo], value(static_cast<int>(t), grp, param_global_index(p, i)))
                << g.name << " tp " << tp << " rank " << rank << " group " << groups[grp];
        }
      }
    }
  }
  // model/<name> is the same stored data as optim/master/<name>.
  std::vector<double> whole(24);
  r.read("model", gl[2], 0, 24, whole.data(), DType::f64, 0);
  for (int64_t i = 0; i < 24; ++i) EXPECT_EQ(whole[i], value(2, 0, i));
}

// Pieces above the alignment threshold go to the disk with direct writes through the write ring
// (a 9 MB piece spans more than one ring buffer); every element must read back, and each shard's
// recorded CRC-32 must be zlib's over the file as it lies on disk.
TEST_F(CheckpointFiles, LargePiecesAreWrittenDirectlyAndReadBackExactly) {
  const std::vector<Param> gl = {make_param("huge", {2200, 2048}, -1, 1, 1, 0),
                                 make_param("rows", {998, 1031}, 0, 1, 1, 0),
                                 make_param("cols", {66, 4098}, 1, 1, 1, 0)};
  const std::string ck = save(gl, 2);
  const CheckpointReader r(ck);
  for (size_t i = 0; i < r.shards().size(); ++i) {
    const std::string path = ck + "/" + r.shards()[i].file;
    std::ifstream in(path, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(static_cast<int64_t>(bytes.size()), r.shards()[i].bytes) << path;
    EXPECT_EQ(static_cast<uint32_t>(crc32_z(0, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size())),
              r.shards()[i].crc32) << path;
  }
  const char* groups[] = {"optim/master", "optim/exp_avg", "optim/exp_avg_sq"};
  for (size_t t = 0; t < gl.size(); ++t)
    for (int grp = 0; grp < 3; ++grp) {
      const int64_t n = gl[t].global_shape.numel();
      std::vector<float> buf(n, -1.0f);
      r.read(groups[grp], gl[t], 0, n, buf.data(), DType::f32, 0);
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(buf[i], value(static_cast<int>(t), grp, i)) << gl[t].name << " " << groups[grp] << " element " << i;
    }
}

// write_blocks leaves the bytes between blocks as they were, puts each block at its offset
// whatever its alignment and length, and returns zlib's CRC-32 and the size of the whole file.
TEST(CheckpointDirectIo, WriteBlocksPlacesBlocksKeepsGapsAndChecksumsTheFile) {
  const std::string path = (fs::temp_directory_path() / ("tessera_blocks_" + std::to_string(::getpid()))).string();
  std::mt19937 rng(5);
  std::string file(20 << 20, '\0');
  for (char& c : file) c = static_cast<char>(rng());
  { std::ofstream(path, std::ios::binary) << file; }
  std::vector<std::string> payloads;
  const std::vector<std::pair<int64_t, int64_t>> places = {
      {1000, (9 << 20) + 123}, {12 << 20, 3 * 4096}, {(16 << 20) + 5, 10}, {(16 << 20) + 4096, 0}, {(20 << 20) - 77, 77}};
  std::vector<ckpt::FileBlock> blocks;
  for (const auto& [at, n] : places) {
    std::string p(static_cast<size_t>(n), '\0');
    for (char& c : p) c = static_cast<char>(rng());
    payloads.push_back(p);
  }
  for (size_t i = 0; i < places.size(); ++i) {
    blocks.push_back({places[i].first, payloads[i].data(), places[i].second, {}});
    file.replace(static_cast<size_t>(places[i].first), payloads[i].size(), payloads[i]);
  }
  bool called = false;
  const ckpt::WrittenFile w = ckpt::write_blocks(path, {blocks.rbegin(), blocks.rend()}, [&] { called = true; });
  EXPECT_TRUE(called);
  std::ifstream in(path, std::ios::binary);
  const std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(got == file) << "the file differs from the expected bytes";
  EXPECT_EQ(w.bytes, static_cast<int64_t>(file.size()));
  EXPECT_EQ(w.crc32, static_cast<uint32_t>(crc32_z(0, reinterpret_cast<const unsigned char*>(file.data()), file.size())));
  fs::remove(path);
  EXPECT_THROW(ckpt::write_blocks(path, blocks, nullptr), UserError) << "no such file";
}

TEST_F(CheckpointFiles, CorruptedTruncatedAndMissingShardsAreNamed) {
  const std::string ck = save(globals(), 2);
  const std::string shard = ck + "/shard_1.h5";
  flip_byte(shard, static_cast<std::streamoff>(fs::file_size(shard) / 2));
  const CheckpointReader r(ck);
  EXPECT_EQ(r.check_shard_file(1), "") << "same size: only the checksum can tell";
  EXPECT_NE(r.verify_shard(1).find("shard_1.h5: shard fails its checksum"), std::string::npos) << r.verify_shard(1);
  EXPECT_EQ(r.verify_shard(0), "");
  fs::resize_file(ck + "/shard_2.h5", fs::file_size(ck + "/shard_2.h5") - 100);
  EXPECT_NE(r.check_shard_file(2).find("shard_2.h5: shard is"), std::string::npos);
  EXPECT_NE(r.check_shard_file(2).find("(truncated)"), std::string::npos);
  fs::remove(ck + "/shard_3.h5");
  EXPECT_NE(r.check_shard_file(3).find("shard_3.h5: shard file is missing"), std::string::npos);
  fs::remove(ck + "/index.h5");
  EXPECT_TRUE(checkpoint_list(dir_.string()).empty()) << "a directory without its index is not a checkpoint";
  EXPECT_THROW(CheckpointReader{ck}, UserError);
}

TEST_F(CheckpointFiles, PruningKeepsTheNewestAndEveryKeepEveryStep) {
  for (int64_t step : {10, 20, 30, 40, 50}) {
    const std::string name = checkpoint_dir_name(step);
    const std::string partial = dir_.string() + "/" + name + ".partial";
    fs::create_directories(partial);
    ShardData d;
    d.dtype = "f32";
    d.groups = {"master"};
    d.buffers = {std::vector<char>(4 * 8)};
    const Param p = make_param("ln", {8}, -1, 1, 1, 0);
    d.entries.push_back({p.name, p.global_shape, param_slices(p, 0, 8, 0)});
    const ShardFile f = shard_write(partial + "/shard_0.h5", 0, d);
    CheckpointMeta meta;
    meta.step = step;
    meta.dtype = "f32";
    checkpoint_commit(dir_.string(), partial, dir_.string() + "/" + name, meta, {f}, 2, 20);
  }
  std::vector<std::string> names;
  for (const auto& d : checkpoint_list(dir_.string())) names.push_back(fs::path(d).filename().string());
  EXPECT_EQ(names, (std::vector<std::string>{"step_00000050", "step_00000040", "step_00000020"}));
  std::ifstream latest(dir_ / "latest");
  std::string line;
  std::getline(latest, line);
  EXPECT_EQ(line, "step_00000050");
}

// read_slices reads every requested slice and, in the same pass, checksums the shards it is
// told to verify; the result names a corrupted shard exactly as verify_shard does.
TEST_F(CheckpointFiles, ReadSlicesVerifiesShardsInTheSamePass) {
  const std::string ck = save(globals(), 2);
  const std::vector<Param> gl = globals();
  std::vector<Param> mine;
  for (const Param& g : gl) {
    const bool splits = g.shard_dim >= 0;
    mine.push_back(make_param(g.name, g.global_shape, g.shard_dim, g.shard_parts, splits ? 2 : 1, splits ? 1 : 0));
  }
  std::vector<std::vector<float>> bufs(mine.size());
  std::vector<CheckpointReader::SliceRead> reads;
  for (size_t t = 0; t < mine.size(); ++t) {
    bufs[t].assign(mine[t].local_shape.numel(), -1.0f);
    reads.push_back({"optim/exp_avg", &mine[t], 0, mine[t].local_shape.numel(), bufs[t].data(), DType::f32, 0});
  }
  {
    const CheckpointReader r(ck);
    const std::vector<std::string> lines = r.read_slices(reads, {0, 1, 2, 3});
    EXPECT_EQ(lines, std::vector<std::string>(4, ""));
    for (size_t t = 0; t < mine.size(); ++t)
      for (int64_t i = 0; i < mine[t].local_shape.numel(); ++i)
        ASSERT_EQ(bufs[t][i], value(static_cast<int>(t), 1, param_global_index(mine[t], i))) << mine[t].name;
  }
  flip_byte(ck + "/shard_2.h5", -7);  // past the data
  const CheckpointReader r(ck);
  const std::vector<std::string> lines = r.read_slices(reads, {3, 2});
  EXPECT_EQ(lines[0], "");
  EXPECT_NE(lines[1].find("shard_2.h5: shard fails its checksum"), std::string::npos) << lines[1];
  EXPECT_EQ(lines[1], r.verify_shard(2));
}

// Checkpoints written before index.h5 had its piece table are read through the virtual datasets.
TEST_F(CheckpointFiles, ACheckpointWithoutThePieceTableStillReads) {
  const std::string ck = save(globals(), 2);
  {
    const hid_t f = H5Fopen((ck + "/index.h5").c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    ASSERT_GT(H5Lexists(f, "pieces", H5P_DEFAULT), 0) << "the writer records where every piece is";
    ASSERT_GE(H5Ldelete(f, "pieces", H5P_DEFAULT), 0);
    H5Fclose(f);
  }
  const CheckpointReader r(ck);
  const Param p = make_param("qkv", {24, 8}, 0, 3, 2, 1);
  std::vector<double> buf(p.local_shape.numel(), -1.0);
  const std::vector<std::string> lines =
      r.read_slices({{"optim/exp_avg_sq", &p, 0, p.local_shape.numel(), buf.data(), DType::f64, 0}}, {0, 1});
  EXPECT_EQ(lines, std::vector<std::string>(2, ""));
  for (int64_t i = 0; i < p.local_shape.numel(); ++i) ASSERT_EQ(buf[i], value(0, 2, param_global_index(p, i)));
  // and their checksums are still checked, through the page cache
  flip_byte(ck + "/shard_1.h5", static_cast<std::streamoff>(fs::file_size(ck + "/shard_1.h5") / 2));
  EXPECT_EQ(r.verify_shard(0), "");
  EXPECT_NE(r.verify_shard(1).find("shard_1.h5: shard fails its checksum"), std::string::npos) << r.verify_shard(1);
  EXPECT_NE(r.first_problem(true).find("shard_1.h5: shard fails its checksum"), std::string::npos);
}

TEST(CheckpointCrc32, EqualsZlibForEveryLengthAlignmentAndStart) {
  std::mt19937 rng(11);
  std::vector<unsigned char> data(70000);
  for (auto& c : data) c = static_cast<unsigned char>(rng());
  for (size_t offset = 0; offset < 17; ++offset)
    for (size_t n = 0; n < 700; n += (n < 200 ? 1 : 13)) {
      const uint32_t start = offset % 3 == 0 ? 0 : static_cast<uint32_t>(rng());
      const uint32_t want = static_cast<uint32_t>(crc32_z(start, data.data() + offset, n));
      ASSERT_EQ(ckpt::crc32_update(start, data.data() + offset, n), want)
          << "offset " << offset << " length " << n;
      // The copying form: same CRC, the bytes copied to an unaligned destination, nothing past it.
      std::vector<unsigned char> to(n + 9, 0xA5);
      ASSERT_EQ(ckpt::crc32_copy(start, to.data() + 3, data.data() + offset, n), want)
          << "offset " << offset << " length " << n;
      ASSERT_TRUE(std::equal(data.begin() + offset, data.begin() + offset + n, to.begin() + 3))
          << "offset " << offset << " length " << n;
      ASSERT_TRUE(to[0] == 0xA5 && to[1] == 0xA5 && to[2] == 0xA5 && to[n + 3] == 0xA5)
          << "offset " << offset << " length " << n;
    }
  const uint32_t whole = ckpt::crc32_update(0, data.data(), data.size());
  EXPECT_EQ(whole, static_cast<uint32_t>(crc32_z(0, data.data(), data.size())));
  EXPECT_EQ(ckpt::crc32_update(ckpt::crc32_update(0, data.data(), 4097), data.data() + 4097, data.size() - 4097), whole);
}

// Peak resident memory (VmHWM) reset through /proc/self/clear_refs; -1 when unavailable.
int64_t reset_peak_kib() {
  std::ofstream c("/proc/self/clear_refs");
  c << "5";
  c.close();
  return c ? 0 : -1;
}
int64_t status_kib(const char* key) {
  std::ifstream s("/proc/self/status");
  std::string line;
  while (std::getline(s, line))
    if (line.rfind(key, 0) == 0) return std::stoll(line.substr(std::strlen(key) + 1));
  return -1;
}

TEST_F(CheckpointFiles, LoadingASliceNeedsMemoryForTheSliceOnly) {
  // Four 16 MiB tensors (x3 groups = 192 MiB on disk); a tp-rank of 4 reads a quarter of each.
  std::vector<Param> big = {make_param("a", {2048, 2048}, 0, 1, 1, 0), make_param("b", {2048, 2048}, 1, 1, 1, 0),
                            make_param("c", {6144, 512}, 0, 3, 1, 0), make_param("d", {4096, 1024}, 0, 1, 1, 0)};
  const std::string ck = save(big, 1);
  const CheckpointReader r(ck);
  std::vector<std::vector<float>> dst;
  std::vector<Param> mine;
  for (const Param& g : big) {
    mine.push_back(make_param(g.name, g.global_shape, g.shard_dim, g.shard_parts, 4, 1));
    dst.emplace_back(mine.back().local_shape.numel(), 0.0f);  // the rank's own slices, allocated up front
  }
  if (reset_peak_kib() < 0) GTEST_SKIP() << "SKIPPED: /proc/self/clear_refs is not writable here";
  const int64_t before = status_kib("VmRSS:");
  for (const char* group : {"optim/master", "optim/exp_avg", "optim/exp_avg_sq"})
    for (size_t t = 0; t < mine.size(); ++t)
      r.read(group, mine[t], 0, mine[t].local_shape.numel(), dst[t].data(), DType::f32, 0);
  const int64_t grown = status_kib("VmHWM:") - before;
  EXPECT_EQ(dst[2][5], value(2, 2, param_global_index(mine[2], 5)));
  // One whole tensor is 16 MiB; reading slices of twelve of them must not come near that.
  EXPECT_LT(grown, 8 * 1024) << "loading slices grew the peak resident memory by " << grown << " KiB";
}

}  // namespace
}  // namespace tessera
