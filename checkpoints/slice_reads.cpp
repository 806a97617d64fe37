// CheckpointReader::read_slices: a rank's slices fetched with large sequential pread()s in the
// order their bytes sit in the shard files, and the CRC-32 of whole shards taken in that pass
// (also what verify_shards runs on, for checks outside a load).
//
// Through the index's virtual datasets every read makes HDF5 open the source shard and walk its
// metadata: small reads scattered over a 370 MB file, which a cold page cache turns into seeks
// (a 124M model's state loaded at a third of the disk's sequential rate). The piece table in
// index.h5 gives each piece's byte offset instead, so a rank resuming under the writer's layout
// reads its own shard start to end as one stream and checksums the same bytes on the way.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "checkpoints/checkpoint.h"
#include "checkpoints/checkpoint_internal.h"
#include "checkpoints/crc32.h"
#include "checkpoints/direct_io.h"
#include "runtime/error.h"

namespace tessera {
using namespace ckpt;
namespace {

// Largest read, reads in flight per file and buffers in the ring (readers fill ahead of the
// consumer). Measured on the 2-core virtio machine, 4 ranks reading 1.5 GB from a dropped page
// cache: 16 MiB reads beat 8 MiB, and four in flight per file (0.56-1.42 s over 9 runs) beat two
// (0.68-2.00 s), both far noisier than their difference.
constexpr int64_t kMaxChunk = 16 << 20;
constexpr int kReaders = 4;
constexpr int kRing = 6;
// Unwanted bytes between two wanted ranges of a file are read through, not skipped, up to this
// many: one more request costs more than reading them.
constexpr int64_t kReadThrough = 1 << 20;

// `elems` stored elements at byte `offset` of a shard file, going to `dst` (an f64 buffer when
// dst_f64, else f32; converted when the stored type differs).
struct Run {
  int64_t offset = 0, elems = 0;
  char* dst = nullptr;
  bool dst_f64 = false;
  size_t read = 0;  // which SliceRead it serves
};

// Appends the runs of the elements slice `s` (into `buf`) shares with the stored piece at byte
// `offset` covering global box [start, start + count); returns how many elements that is. A run
// is as long as the elements are contiguous both in the piece and in the buffer.
int64_t add_runs(const SliceCopy& s, char* buf, bool buf_f64, size_t read, int64_t offset,
                 const std::array<int64_t, 4>& start, const std::array<int64_t, 4>& count,
                 size_t stored_elem, std::vector<Run>& out) {
  const int r = s.rank;
  std::array<int64_t, 4> lo{}, ext{};
  int64_t total = 1;
  for (int d = 0; d < r; ++d) {
    lo[d] = std::max(s.global_start[d], start[d]);
    const int64_t hi = std::min(s.global_start[d] + s.count[d], start[d] + count[d]);
    if (hi <= lo[d]) return 0;
    ext[d] = hi - lo[d];
    total *= ext[d];
  }
  int64_t piece_stride[4] = {1, 1, 1, 1}, box_stride[4] = {1, 1, 1, 1};
  for (int d = r - 2; d >= 0; --d) {
    piece_stride[d] = piece_stride[d + 1] * count[d + 1];
    box_stride[d] = box_stride[d + 1] * s.box_shape[d + 1];
  }
  int k = r - 1;  // runs span dimensions k.. (whole in both the piece and the box after k)
  while (k > 0 && ext[k] == count[k] && ext[k] == s.box_shape[k]) --k;
  int64_t run = 1;
  for (int d = k; d < r; ++d) run *= ext[d];
  const size_t buf_elem = buf_f64 ? 8 : 4;
  std::array<int64_t, 4> at{};  // position in the intersection, dimensions < k
  for (;;) {
    int64_t src = 0, dst = s.buf_offset;
    for (int d = 0; d < r; ++d) {
      src += (lo[d] - start[d] + at[d]) * piece_stride[d];
      dst += (s.box_start[d] + lo[d] - s.global_start[d] + at[d]) * box_stride[d];
    }
    out.push_back({offset + src * static_cast<int64_t>(stored_elem), run, buf + dst * buf_elem,
                   buf_f64, read});
    int d = k - 1;
    while (d >= 0 && ++at[d] == ext[d]) at[d--] = 0;
    if (d < 0) break;
  }
  return total;
}

// Sorts runs by file offset and joins neighbours of one read that are contiguous in the file and
// the buffer.
void sort_and_join(std::vector<Run>& runs, size_t stored_elem) {
  std::sort(runs.begin(), runs.end(),
            [](const Run& a, const Run& b) { return a.offset < b.offset; });
  size_t n = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    if (n > 0) {
      Run& last = runs[n - 1];
      const int64_t elem = last.dst_f64 ? 8 : 4;
      if (last.read == runs[i].read && last.dst_f64 == runs[i].dst_f64 &&
          last.offset + last.elems * static_cast<int64_t>(stored_elem) == runs[i].offset &&
          last.dst + last.elems * elem == runs[i].dst) {
        last.elems += runs[i].elems;
        continue;
      }
    }
    runs[n++] = runs[i];
  }
  runs.resize(n);
}

// The ring's buffer size for reading `total` bytes: small reads get small buffers (the ring
// stays at most a quarter of what is read), large ones kMaxChunk.
int64_t ring_chunk_bytes(int64_t total) {
  return std::clamp(align_up(total / (4 * kRing)), kDirectAlign * 64, kMaxChunk);
}

// One shard file's byte ranges [begin, end), read in order through a ring of aligned buffers
// that kReaders threads fill ahead of the consumer. The file is opened with O_DIRECT: the bytes
// go from the disk into the ring without passing through the page cache, whose pages cost more
// to allocate and copy out of than the reading itself on small machines (measured: 4 ranks
// reading 1.5 GB buffered spent about 2 s of kernel CPU on it, directly 0.1-0.2 s).
class ChunkPipe {
 public:
  struct Chunk {
    int64_t begin = 0, end = 0;  // aligned
  };
  // The ring is carved from `borrowed` (kRing * chunk_bytes, aligned) when given, else mapped.
  ChunkPipe(const std::string& path, std::vector<Chunk> chunks, int64_t chunk_bytes, char* borrowed)
      : path_(path), chunks_(std::move(chunks)), got_(chunks_.size(), -1) {
    for (int i = 0; i < kRing; ++i) {
      if (borrowed) {
        ring_[i] = {borrowed + i * chunk_bytes, 0};
        continue;
      }
      void* p = ::mmap(nullptr, static_cast<size_t>(chunk_bytes), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
      if (p == MAP_FAILED) {
        release_ring();
        throw UserError("out of host memory for checkpoint read buffers");
      }
      ring_[i] = {static_cast<char*>(p), static_cast<size_t>(chunk_bytes)};
    }
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
    if (fd_ < 0 && errno == EINVAL)
      fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);  // no O_DIRECT here
    if (fd_ < 0) {
      const std::string why = os_reason();
      release_ring();
      throw UserError(path + ": cannot open (" + why + ")");
    }
    for (int t = 0; t < kReaders; ++t) readers_.emplace_back([this, t] { read_chunks(t); });
  }
  ~ChunkPipe() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : readers_) t.join();
    ::close(fd_);
    release_ring();
  }
  ChunkPipe(const ChunkPipe&) = delete;
  ChunkPipe& operator=(const ChunkPipe&) = delete;

  // Chunk k's bytes (call with k = 0, 1, ... in order, release(k) before asking for k + kRing);
  // `valid` is how many were read: fewer than the chunk only at the end of the file.
  const char* wait(size_t k, int64_t& valid) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return got_[k] != -1; });
    if (got_[k] < 0) throw UserError(path_ + ": cannot read (" + error_ + ")");
    valid = got_[k];
    return ring_[k % kRing].get();
  }
  void release(size_t k) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      released_ = k + 1;
    }
    cv_.notify_all();
  }

 private:
  // Reader t takes chunks t, t + kReaders, ...; each waits for its ring slot to be released.
  void read_chunks(int t) {
    for (size_t k = t; k < chunks_.size(); k += kReaders) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || k < released_ + kRing; });
        if (stop_) return;
      }
      std::string error;
      const Chunk& c = chunks_[k];
      const int64_t n = pread_all(fd_, c.begin, c.end - c.begin, ring_[k % kRing].get(), error);
      {
        std::lock_guard<std::mutex> lock(mu_);
        got_[k] = n < 0 ? -2 : n;
        if (n < 0) error_ = error;
      }
      cv_.notify_all();
    }
  }

  struct Buffer {
    char* data = nullptr;
    size_t bytes = 0;  // mapped here (0: borrowed)
    char* get() const { return data; }
  };
  void release_ring() {
    for (Buffer& b : ring_)
      if (b.bytes) ::munmap(b.data, b.bytes), b = {};
  }
  std::string path_;
  int fd_ = -1;
  std::vector<Chunk> chunks_;
  Buffer ring_[kRing];
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int64_t> got_;  // per chunk: -1 pending, -2 failed, else bytes read
  std::string error_;
  size_t released_ = 0;
  bool stop_ = false;
  std::vector<std::thread> readers_;
};

// Reads `runs` (sorted by offset) of one shard file of `bytes` bytes; with `whole`, every byte in
// order, returning the file's CRC-32 (else 0). Runs whose element type differs from the stored
// one are converted through a plain read afterwards. `run_done` hears of every run as soon as
// its elements are in place.
uint32_t read_shard(const std::string& path, int64_t bytes, const std::vector<Run>& runs,
                    size_t stored_elem, bool whole, const std::function<void(const Run&)>& run_done,
                    std::span<char> io_buffer) {
  std::vector<const Run*> copies, converts;
  for (const Run& r : runs) ((stored_elem == 8) == r.dst_f64 ? copies : converts).push_back(&r);
  auto end_of = [&](const Run& r) {
    return r.offset + r.elems * static_cast<int64_t>(stored_elem);
  };
  // Spans to read: the whole file, or the runs with small gaps read through.
  std::vector<ChunkPipe::Chunk> spans;
  if (whole) spans.push_back({0, align_up(bytes)});
  for (const Run* r : whole ? std::vector<const Run*>{} : copies) {
    const int64_t b = align_down(r->offset), e = align_up(end_of(*r));
    if (!spans.empty() && b <= spans.back().end + kReadThrough)
      spans.back().end = std::max(spans.back().end, e);
    else
      spans.push_back({b, e});
  }
  int64_t total = 0;
  for (const auto& s : spans) total += s.end - s.begin;
  int64_t chunk_bytes = ring_chunk_bytes(total);
  // A caller's idle, already resident memory serves as the ring when it holds one of at least
  // 1 MiB reads: fresh pages cost more than the reading on a virtual machine (4 ranks mapping a
  // 64 MiB ring each took 0.35 s before the first byte came in).
  char* borrowed = reinterpret_cast<char*>(align_up(reinterpret_cast<intptr_t>(io_buffer.data())));
  const int64_t room =
      io_buffer.empty() ? 0 : static_cast<int64_t>(io_buffer.data() + io_buffer.size() - borrowed);
  if (room / kRing >= (1 << 20))
    chunk_bytes = std::min(chunk_bytes, align_down(room / kRing));
  else
    borrowed = nullptr;
  std::vector<ChunkPipe::Chunk> chunks;
  for (const auto& s : spans)
    for (int64_t at = s.begin; at < s.end; at += chunk_bytes)
      chunks.push_back({at, std::min(s.end, at + chunk_bytes)});
  uint32_t crc = 0;
  if (!chunks.empty()) {
    ChunkPipe pipe(path, chunks, chunk_bytes, borrowed);
    size_t first = 0;  // copies before it are done
    for (size_t k = 0; k < chunks.size(); ++k) {
      int64_t valid = 0;
      const char* data = pipe.wait(k, valid);
      const int64_t lo = chunks[k].begin, hi = std::min(lo + valid, whole ? bytes : lo + valid);
      if (hi < std::min(chunks[k].end, bytes))
        throw UserError(path + ": cannot read (ends early: truncated?)");
      // With `whole`, the CRC runs over [lo, hi) in order, over copied bytes as they are copied
      // (one pass over the memory instead of two) and over the rest between them.
      int64_t summed = lo;  // bytes before it are in crc
      auto sum_to = [&](int64_t at) {
        if (at > summed) crc = crc32_update(crc, data + (summed - lo), static_cast<size_t>(at - summed));
        summed = std::max(summed, at);
      };
      while (first < copies.size() && end_of(*copies[first]) <= lo) ++first;
      for (size_t j = first; j < copies.size() && copies[j]->offset < hi; ++j) {
        const Run& r = *copies[j];
        const int64_t a = std::max(lo, r.offset), b = std::min(hi, end_of(r));
        if (a >= b) continue;
        char* to = r.dst + (a - r.offset);
        if (!whole || b <= summed) {
          std::memcpy(to, data + (a - lo), static_cast<size_t>(b - a));
        } else {
          sum_to(a);
          const int64_t c = summed;  // [a, c) is in the crc already (runs that overlap)
          std::memcpy(to, data + (a - lo), static_cast<size_t>(c - a));
          crc = crc32_copy(crc, to + (c - a), data + (c - lo), static_cast<size_t>(b - c));
          summed = b;
        }
        if (b == end_of(r)) run_done(r);
      }
      if (whole) sum_to(hi);
      pipe.release(k);
    }
  }
  if (!converts.empty()) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw UserError(path + ": cannot open (" + os_reason() + ")");
    std::vector<char> buf;
    std::string error;
    for (const Run* r : converts) {
      buf.resize(static_cast<size_t>(r->elems) * stored_elem);
      const int64_t n =
          pread_all(fd, r->offset, static_cast<int64_t>(buf.size()), buf.data(), error);
      if (n != static_cast<int64_t>(buf.size())) {
        ::close(fd);
        throw UserError(path + ": cannot read (" + (n < 0 ? error : "ends early: truncated?") +
                        ")");
      }
      for (int64_t i = 0; i < r->elems; ++i) {
        if (r->dst_f64)
          reinterpret_cast<double*>(r->dst)[i] = reinterpret_cast<const float*>(buf.data())[i];
        else
          reinterpret_cast<float*>(r->dst)[i] =
              static_cast<float>(reinterpret_cast<const double*>(buf.data())[i]);
      }
      run_done(*r);
    }
    ::close(fd);
  }
  return crc;
}

}  // namespace

std::vector<std::string> CheckpointReader::read_slices(const std::vector<SliceRead>& reads,
                                                       const std::vector<size_t>& verify,
                                                       const std::function<void(size_t)>& read_done,
                                                       std::span<char> io_buffer) const {
  for (const SliceRead& r : reads)
    TS_ASSERT(r.buf_dtype == DType::f64 || r.buf_dtype == DType::f32,
              "checkpoint reads into f32 or f64 buffers");
  for (size_t i : verify) TS_ASSERT(i < shards_.size(), "no such shard");
  if (pieces_.empty() || std::endian::native != std::endian::little)
    return read_slices_hdf5(reads, verify, read_done);
  const size_t stored_elem = meta_.dtype == "f64" ? 8 : 4;
  std::vector<std::vector<Run>> runs(shards_.size());
  std::vector<int64_t> runs_left(reads.size(), 0);
  for (size_t i = 0; i < reads.size(); ++i) {
    const SliceRead& r = reads[i];
    check_tensor(r.group, *r.param);
    const char* shard_group = nullptr;
    for (const auto& [index_group, sg] : kIndexGroups)
      if (r.group == index_group) shard_group = sg;
    const std::string name = r.group + "/" + r.param->name;
    const auto stored =
        shard_group ? pieces_.find(std::string(shard_group) + "/" + r.param->name) : pieces_.end();
    const bool f64 = r.buf_dtype == DType::f64;
    for (const SliceCopy& s : param_slices(*r.param, r.lo, r.hi, r.buf_offset)) {
      int64_t covered = 0;
      if (stored != pieces_.end())
        for (const StoredPiece& p : stored->second)
          covered += add_runs(s, static_cast<char*>(r.buf), f64, i, p.offset, p.start, p.count,
                              stored_elem, runs[p.shard]);
      if (covered != s.numel())
        throw UserError(dir_ + "/index.h5: the piece table does not cover tensor " + name +
                        " (damaged index?)");
    }
  }
  std::vector<std::string> problems(verify.size());
  std::vector<char> whole(shards_.size(), 0);
  for (size_t v = 0; v < verify.size(); ++v) {
    problems[v] = check_shard_file(verify[v]);
    if (problems[v].empty()) whole[verify[v]] = 1;
  }
  for (std::vector<Run>& in_shard : runs) {
    sort_and_join(in_shard, stored_elem);
    for (const Run& r : in_shard) ++runs_left[r.read];
  }
  const auto run_done = [&](const Run& r) {
    if (--runs_left[r.read] == 0 && read_done) read_done(r.read);
  };
  std::vector<uint32_t> crc(shards_.size(), 0);
  for (size_t i = 0; i < shards_.size(); ++i) {
    if (runs[i].empty() && !whole[i]) continue;
    const ShardFile& s = shards_[i];
    int64_t end = 0;
    for (const Run& r : runs[i])
      end = std::max(end, r.offset + r.elems * static_cast<int64_t>(stored_elem));
    if (end > s.bytes)
      throw UserError(dir_ + "/index.h5: the piece table points past the end of " + s.file +
                      " (damaged index?)");
    try {
      crc[i] = read_shard(dir_ + "/" + s.file, s.bytes, runs[i], stored_elem, whole[i], run_done,
                          io_buffer);
    } catch (const UserError& e) {
      if (!whole[i]) throw;
      for (size_t v = 0; v < verify.size();
           ++v)  // unreadable: a problem of that shard, as in verify_shard
        if (verify[v] == i) problems[v] = e.what();
      whole[i] = 0;
    }
  }
  for (size_t v = 0; v < verify.size(); ++v)
    if (whole[verify[v]]) problems[v] = checksum_line(verify[v], crc[verify[v]]);
  return problems;
}

std::vector<std::string> CheckpointReader::verify_shards(const std::vector<size_t>& shards) const {
  if (pieces_.empty() || std::endian::native != std::endian::little) {  // as read_slices_hdf5
    std::vector<std::string> lines;
    for (size_t i : shards) {
      if (std::string e = check_shard_file(i); !e.empty()) {
        lines.push_back(e);
        continue;
      }
      int64_t bytes = 0;
      uint32_t crc = 0;
      const std::string e = file_crc32(dir_ + "/" + shards_[i].file, bytes, crc);
      lines.push_back(e.empty() ? checksum_line(i, crc) : e);
    }
    return lines;
  }
  // One ring for every shard, sized as read_shard sizes it for the largest.
  int64_t largest = 0;
  for (size_t i : shards) largest = std::max(largest, shards_[i].bytes);
  std::vector<char> ring(static_cast<size_t>(kRing * ring_chunk_bytes(align_up(largest)) + 2 * kDirectAlign));
  return read_slices({}, shards, {}, ring);
}

}  // namespace tessera
