// Sharded checkpoints (docs/checkpoint-format.md).
//
// A checkpoint is a directory <root>/step_<8 digits>/ holding one HDF5 shard per rank that owns
// unique state and index.h5, whose virtual datasets present every tensor as one global array:
// model/<name>, optim/master/<name>, optim/exp_avg/<name>, optim/exp_avg_sq/<name>. It is written
// under step_<N>.partial/ and exists only once renamed, after every shard and the index are on
// disk; `latest` then names it.
//
// This module does the file work; the trainer decides when to save and what each rank owns.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "checkpoints/slices.h"
#include "model/params.h"
#include "runtime/device.h"

namespace tessera {

inline constexpr int kCheckpointFormatVersion = 1;

// What a checkpoint says about itself (attributes of index.h5).
struct CheckpointMeta {
  int64_t step = 0;     // optimizer steps taken
  int64_t tokens = 0;   // training tokens consumed
  int64_t samples = 0;  // data loader position: global samples consumed
  int64_t seed = 0;     // train.seed: with the step, the whole counter-based RNG state
  std::string dtype;    // of the stored tensors: "f32" or "f64"
  std::string config_toml;
  std::string layout;   // human-readable: "world 4 = dp 2 x pp 1 x tp 2, zero 1, ..."
  // world, tp, pp, dp, zero, virtual_stages, sequence_parallel
  std::vector<int64_t> layout_ints;
  std::string tessera_version, git_commit;
  bool has_optimizer = true;  // false for imported weights: moments start at zero
  // Training state beyond tensors and counters; empty when unused (and in older checkpoints):
  // the loss-spike detector's window (losses as %.17g, comma-separated, oldest first) and the
  // data windows skipped so far (train.skip_data's "FROM:TO,..." form).
  std::string loss_window, data_skips;
};

struct ShardFile {
  std::string file;  // name inside the checkpoint directory
  int64_t rank = 0;
  int64_t bytes = 0;
  uint32_t crc32 = 0;  // zlib CRC-32 of the whole file
};

// The state one rank owns, on the host. Each group ("master", "exp_avg", "exp_avg_sq") is a
// flat buffer; every entry names a tensor and the pieces of it that sit in those buffers.
struct ShardData {
  std::string dtype;  // "f32" | "f64"
  std::vector<std::string> groups;
  std::vector<std::vector<char>> buffers;  // one per group
  // Instead of `buffers` (one group only): the elements of each slice, asked for while the file
  // is written, one slice at a time: a pointer to the slice's box, valid until the next call.
  // For a shard larger than what should be staged in memory (tessera import).
  std::function<const char*(const SliceCopy&)> source;
  struct Entry {
    std::string tensor;
    Shape global_shape;
    std::vector<SliceCopy> slices;
  };
  std::vector<Entry> entries;
  int64_t payload_bytes() const;
};

std::string checkpoint_dir_name(int64_t step);  // "step_00000100"

// Writes `data` as a shard file, syncs it to disk and reads it back for its CRC-32. Failures
// (disk full, permissions) throw UserError naming the file and the reason.
ShardFile shard_write(const std::string& path, int64_t rank, const ShardData& data);

// After every shard is on disk (rank 0): builds index.h5 in `partial_dir` from the shards'
// own descriptions, syncs it, renames `partial_dir` to `final_dir`, syncs the parent, points
// `latest` at it and removes checkpoints beyond `keep` newest (keeping every keep_every-th
// step) and abandoned *.partial directories.
void checkpoint_commit(const std::string& root, const std::string& partial_dir,
                       const std::string& final_dir, const CheckpointMeta& meta,
                       const std::vector<ShardFile>& shards, int64_t keep, int64_t keep_every);

// Directories under `root` that look complete (step_<N> with index.h5, N <= max_step), newest
// step first.
std::vector<std::string> checkpoint_list(const std::string& root, int64_t max_step = INT64_MAX);

// Reads a checkpoint. Every problem a user can cause is a UserError naming the file.
class CheckpointReader {
 public:
  explicit CheckpointReader(const std::string& dir);
  ~CheckpointReader();
  CheckpointReader(const CheckpointReader&) = delete;
  CheckpointReader& operator=(const CheckpointReader&) = delete;

  const std::string& dir() const { return dir_; }
  const CheckpointMeta& meta() const { return meta_; }
  const std::vector<ShardFile>& shards() const { return shards_; }
  // "" when shard i exists with its recorded size; otherwise what is wrong, in one line.
  std::string check_shard_file(size_t i) const;
  // "" when shard i's CRC-32 matches the index (reads the whole file).
  std::string verify_shard(size_t i) const;
  // verify_shard's line for each of `shards`, read one after another with the large direct
  // reads of read_slices (one set of buffers for all) where the index has its piece table.
  std::vector<std::string> verify_shards(const std::vector<size_t>& shards) const;
  // The first shard problem ("" when none): sizes only, or with `checksums` every CRC-32 too.
  std::string first_problem(bool checksums) const;

  struct TensorInfo {
    std::string name;
    Shape shape;
    std::string dtype;
    int64_t bytes = 0;
  };
  // The tensors of `group` ("model", "optim/master", "optim/exp_avg", "optim/exp_avg_sq").
  std::vector<TensorInfo> tensors(const std::string& group) const;
  bool has(const std::string& group, const std::string& tensor) const;
  // Reads local elements [lo, hi) of `p` from the global tensor group/<p.name> into `buf`
  // (elements of `buf_dtype`, f32 or f64), local element lo landing at buf_offset. Only the
  // pieces of [lo, hi) are read. A missing tensor or different global shape is a UserError.
  void read(const std::string& group, const Param& p, int64_t lo, int64_t hi, void* buf,
            DType buf_dtype, int64_t buf_offset) const;

  // One read() as data: the caller keeps `param` and `buf` alive.
  struct SliceRead {
    std::string group;
    const Param* param = nullptr;
    int64_t lo = 0, hi = 0;
    void* buf = nullptr;
    DType buf_dtype = DType::f32;
    int64_t buf_offset = 0;
  };
  // Every read of `reads`, planned together: their bytes are sorted by place in the shard files
  // and fetched with large sequential reads, one pass over each file. Every shard listed in
  // `verify` is read whole in that same pass and its CRC-32 checked; the result has one line per
  // listed shard, "" when it matches (verify_shard's lines). The buffers hold unchecked data
  // until the caller has seen every line empty. `read_done(i)`, when given, is called on this
  // thread as soon as reads[i] is complete, while the pass goes on. `io_buffer`, when given, is
  // idle memory the reads may use for their buffers (its contents are lost) instead of mapping
  // their own: up to 96 MiB of it is used. Reads a checkpoint without a piece table (written
  // before it existed) through HDF5 and verify_shard instead.
  std::vector<std::string> read_slices(const std::vector<SliceRead>& reads,
                                       const std::vector<size_t>& verify,
                                       const std::function<void(size_t)>& read_done = {},
                                       std::span<char> io_buffer = {}) const;
  // Every parameter of `registry` (each rank its local elements) from model/<name>, converted to
  // the parameter's dtype; staging is one parameter's local elements at a time.
  void load_parameters(Device& dev, ParamRegistry& registry) const;

 private:
  std::string dir_;
  int64_t file_ = -1;  // hid_t of index.h5
  CheckpointMeta meta_;
  std::vector<ShardFile> shards_;
  // index.h5's /pieces: where each stored piece's elements sit (row-major, `meta_.dtype`,
  // little-endian) in its shard file. Keyed by "<shard group>/<tensor>"; empty when absent.
  struct StoredPiece {
    int64_t shard = 0, offset = 0;
    std::array<int64_t, 4> start{}, count{};
  };
  std::map<std::string, std::vector<StoredPiece>> pieces_;

  // UserError unless index dataset group/<p.name> exists with p's global shape.
  void check_tensor(const std::string& group, const Param& p) const;
  std::string checksum_line(size_t shard, uint32_t crc) const;
  std::vector<std::string> read_slices_hdf5(const std::vector<SliceRead>& reads,
                                            const std::vector<size_t>& verify,
                                            const std::function<void(size_t)>& read_done) const;
};

}  // namespace tessera
