#include "checkpoints/direct_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "checkpoints/checkpoint_internal.h"
#include "checkpoints/crc32.h"
#include "runtime/error.h"

namespace tessera::ckpt {
namespace {

// Direct writes: request size, buffers in the ring, requests in flight. Four 8 MiB buffers keep
// two writes in flight while the next is filled.
constexpr int64_t kWriteChunk = 8 << 20;
constexpr int kWriteRing = 4;
constexpr int kWriters = 2;

bool is_direct(int fd) { return (::fcntl(fd, F_GETFL) & O_DIRECT) != 0; }

// The write ring's memory, kept between saves: fresh pages cost more to fault in than the
// writing of a small shard takes, and a process saves from one thread at a time.
struct RingMemory {
  std::mutex mu;
  char* data = nullptr;
  bool taken = false;
};
RingMemory& ring_memory() {
  static RingMemory m;
  return m;
}
constexpr size_t kRingBytes = static_cast<size_t>(kWriteChunk) * kWriteRing;

class RingLease {
 public:
  RingLease() {
    RingMemory& m = ring_memory();
    std::lock_guard<std::mutex> lock(m.mu);
    if (!m.taken) {
      if (!m.data) m.data = static_cast<char*>(std::aligned_alloc(kDirectAlign, kRingBytes));
      if (m.data) {
        m.taken = true;
        data_ = m.data;
        return;
      }
    }
    own_ = static_cast<char*>(std::aligned_alloc(kDirectAlign, kRingBytes));
    if (!own_) throw UserError("out of host memory for checkpoint write buffers");
    data_ = own_;
  }
  ~RingLease() {
    if (own_) {
      std::free(own_);
      return;
    }
    RingMemory& m = ring_memory();
    std::lock_guard<std::mutex> lock(m.mu);
    m.taken = false;
  }
  RingLease(const RingLease&) = delete;
  RingLease& operator=(const RingLease&) = delete;
  char* buffer(int i) const { return data_ + static_cast<size_t>(i) * kWriteChunk; }

 private:
  char* data_ = nullptr;
  char* own_ = nullptr;
};

// kWriters threads writing filled ring buffers at their offsets.
class RingWriter {
 public:
  RingWriter(int fd, std::string path) : fd_(fd), path_(std::move(path)) {
    for (int i = 0; i < kWriteRing; ++i) free_.push_back(ring_.buffer(i));
    for (int t = 0; t < kWriters; ++t) threads_.emplace_back([this] { run(); });
  }
  ~RingWriter() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closing_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }
  RingWriter(const RingWriter&) = delete;
  RingWriter& operator=(const RingWriter&) = delete;

  // A free buffer of kWriteChunk bytes (waits for one).
  char* acquire() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !free_.empty() || !error_.empty(); });
    if (!error_.empty()) throw UserError(path_ + ": cannot write (" + error_ + ")");
    char* b = free_.back();
    free_.pop_back();
    return b;
  }
  void submit(char* buffer, int64_t offset, int64_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      jobs_.push_back({buffer, offset, bytes});
    }
    cv_.notify_all();
  }
  // Waits until every submitted buffer is written.
  void finish() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] {
      return (jobs_.empty() && free_.size() == static_cast<size_t>(kWriteRing)) || !error_.empty();
    });
    if (!error_.empty()) throw UserError(path_ + ": cannot write (" + error_ + ")");
  }

 private:
  struct Job {
    char* buffer;
    int64_t offset, bytes;
  };
  void run() {
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return closing_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = jobs_.front();
        jobs_.pop_front();
      }
      std::string error;
      const bool ok = error_free() && pwrite_all(fd_, job.offset, job.bytes, job.buffer, error);
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (!ok && error_.empty()) error_ = error.empty() ? "an earlier write failed" : error;
        free_.push_back(job.buffer);
      }
      cv_.notify_all();
    }
  }
  bool error_free() {
    std::lock_guard<std::mutex> lock(mu_);
    return error_.empty();
  }

  int fd_;
  std::string path_;
  RingLease ring_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<char*> free_;
  std::deque<Job> jobs_;
  std::string error_;
  bool closing_ = false;
  std::vector<std::thread> threads_;
};

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

int64_t pread_all(int fd, int64_t offset, int64_t n, char* dst, std::string& error) {
  int64_t done = 0;
  while (done < n) {
    const ssize_t got = ::pread(fd, dst + done, static_cast<size_t>(n - done), offset + done);
    if (got < 0 && errno == EINTR) continue;
    const bool direct = is_direct(fd);
    if (got < 0 && errno == EINVAL && direct) {
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_DIRECT);
      continue;
    }
    if (got < 0) {
      error = os_reason();
      return -1;
    }
    if (got == 0) break;
    done += got;
    // A direct read comes back short, at an unaligned place, only at the end of the file.
    if (direct && done < n && (offset + done) % kDirectAlign != 0) break;
  }
  return done;
}

bool pwrite_all(int fd, int64_t offset, int64_t n, const char* src, std::string& error) {
  int64_t done = 0;
  while (done < n) {
    const ssize_t put = ::pwrite(fd, src + done, static_cast<size_t>(n - done), offset + done);
    if (put < 0 && errno == EINTR) continue;
    if (put < 0 && errno == EINVAL && is_direct(fd)) {
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_DIRECT);
      continue;
    }
    if (put < 0) {
      error = os_reason();
      return false;
    }
    if (put == 0) {
      error = "no progress";
      return false;
    }
    done += put;
  }
  return true;
}

WrittenFile write_blocks(const std::string& path, std::vector<FileBlock> blocks,
                         const std::function<void()>& before_sync) {
  std::sort(blocks.begin(), blocks.end(),
            [](const FileBlock& a, const FileBlock& b) { return a.offset < b.offset; });
  for (size_t i = 1; i < blocks.size(); ++i)
    TS_ASSERT(blocks[i - 1].offset + blocks[i - 1].bytes <= blocks[i].offset, "file blocks overlap");
  Fd plain{::open(path.c_str(), O_RDWR | O_CLOEXEC)};
  if (plain.fd < 0) throw UserError(path + ": cannot open (" + os_reason() + ")");
  Fd direct{::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_DIRECT)};  // -1: no O_DIRECT here
  std::vector<uint32_t> crcs(blocks.size(), 0);
  std::string error;
  {
    RingWriter ring(direct.fd >= 0 ? direct.fd : plain.fd, path);
    for (size_t i = 0; i < blocks.size(); ++i) {
      const FileBlock& b = blocks[i];
      const char* src = b.src ? b.src : b.source();
      const int64_t end = b.offset + b.bytes;
      int64_t lo = align_up(b.offset), hi = align_down(end);
      if (lo >= hi) lo = hi = end;  // too short for an aligned middle: all of it buffered
      uint32_t crc = crc32_update(0, src, static_cast<size_t>(lo - b.offset));
      if (!pwrite_all(plain.fd, b.offset, lo - b.offset, src, error))
        throw UserError(path + ": cannot write (" + error + ")");
      for (int64_t at = lo; at < hi; at += kWriteChunk) {
        const int64_t n = std::min(kWriteChunk, hi - at);
        char* buffer = ring.acquire();
        crc = crc32_copy(crc, buffer, src + (at - b.offset), static_cast<size_t>(n));  // one pass
        ring.submit(buffer, at, n);
      }
      crc = crc32_update(crc, src + (hi - b.offset), static_cast<size_t>(end - hi));
      if (!pwrite_all(plain.fd, hi, end - hi, src + (hi - b.offset), error))
        throw UserError(path + ": cannot write (" + error + ")");
      crcs[i] = crc;
    }
    ring.finish();
  }
  if (before_sync) before_sync();
  if (::fsync(plain.fd) != 0) throw UserError(path + ": cannot sync to disk (" + os_reason() + ")");
  struct stat st;
  if (::fstat(plain.fd, &st) != 0) throw UserError(path + ": cannot stat (" + os_reason() + ")");
  WrittenFile out;
  out.bytes = static_cast<int64_t>(st.st_size);
  // The CRC of the whole file: the bytes between blocks (metadata, alignment gaps) as read back,
  // each block's CRC appended with crc32_combine.
  std::vector<char> gap;
  uLong crc = 0;
  int64_t pos = 0;
  auto read_gap = [&](int64_t upto) {
    while (pos < upto) {
      const int64_t n = std::min<int64_t>(upto - pos, 1 << 20);
      gap.resize(static_cast<size_t>(n));
      if (pread_all(plain.fd, pos, n, gap.data(), error) != n)
        throw UserError(path + ": cannot read back (" + (error.empty() ? "ends early" : error) + ")");
      crc = crc32_update(static_cast<uint32_t>(crc), gap.data(), static_cast<size_t>(n));
      pos += n;
    }
  };
  for (size_t i = 0; i < blocks.size(); ++i) {
    read_gap(blocks[i].offset);
    crc = crc32_combine64(crc, crcs[i], blocks[i].bytes);
    pos = blocks[i].offset + blocks[i].bytes;
  }
  if (pos > out.bytes) throw UserError(path + ": shorter than what was written to it");
  read_gap(out.bytes);
  out.crc32 = static_cast<uint32_t>(crc);
  return out;
}

}  // namespace tessera::ckpt
