// Large aligned file I/O for checkpoint shards, past the page cache.
//
// On small machines the page cache is the slow part of moving a checkpoint: allocating and
// filling its pages costs more CPU than the disk needs time (measured on a 2-core virtual
// machine: 4 ranks writing a 124M model's 1.5 GB state through HDF5's buffered writes spent
// 1.6-2.0 s before the first fsync, where dd with fsync takes 0.8 s). Shard files are therefore
// written and read with O_DIRECT: aligned requests from aligned buffers, several in flight.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace tessera::ckpt {

// File offsets, lengths and buffer addresses of direct requests are multiples of this (the
// disk's physical block size covers every logical one).
constexpr int64_t kDirectAlign = 4096;
inline int64_t align_down(int64_t x) { return x / kDirectAlign * kDirectAlign; }
inline int64_t align_up(int64_t x) { return (x + kDirectAlign - 1) / kDirectAlign * kDirectAlign; }

// Reads [offset, offset + n) of `fd` into dst; returns the bytes read (fewer only at the end of
// the file), or -1 with `error` set. With O_DIRECT, a file system that refuses the alignment
// gets the same read buffered.
int64_t pread_all(int fd, int64_t offset, int64_t n, char* dst, std::string& error);
// Writes src[0, n) at `offset` of `fd`; false with `error` set. O_DIRECT falls back as above.
bool pwrite_all(int fd, int64_t offset, int64_t n, const char* src, std::string& error);

// `bytes` bytes from `src` that belong at `offset` of a file. Without `src`, `source()` gives
// them when the block's turn comes (valid until the next block's), so a file larger than memory
// can be produced block by block.
struct FileBlock {
  int64_t offset = 0;
  const char* src = nullptr;
  int64_t bytes = 0;
  std::function<const char*()> source;
};
struct WrittenFile {
  int64_t bytes = 0;
  uint32_t crc32 = 0;  // zlib's CRC-32 of the whole file
};

// Writes non-overlapping `blocks` into the existing file `path` (their aligned middles with
// direct writes through a ring of buffers, their ragged ends buffered), calls `before_sync`,
// syncs the file to disk, and returns its size and CRC-32: each block's taken from memory as it
// is copied, the bytes between blocks read back from the file, combined in file order. Errors
// are UserErrors naming the file.
WrittenFile write_blocks(const std::string& path, std::vector<FileBlock> blocks,
                         const std::function<void()>& before_sync);

}  // namespace tessera::ckpt
