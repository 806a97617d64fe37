// The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON header
// naming every tensor's dtype, shape and [begin, end) byte range in the data that follows, and
// "__metadata__" (string to string). Used by `tessera export` and `tessera import`.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace tessera {

struct SafetensorsEntry {
  std::string name;
  std::vector<int64_t> shape;
  const float* data = nullptr;  // numel(shape) elements, written as "F32"
};

// Writes `entries` in the given order (data offsets follow it; the JSON header lists names
// sorted), under a temporary name renamed into place. Failures are UserErrors naming `path`.
void safetensors_write(const std::string& path, const std::vector<SafetensorsEntry>& entries,
                       const std::map<std::string, std::string>& metadata);

// A safetensors file written one tensor at a time, so that only the tensor being written needs
// to be in memory: the header (every name, shape and offset) first, then each tensor's F32
// elements in the order given, appended by the caller. Written as PATH.tmp, synced and renamed
// to PATH by finish(); a writer destroyed unfinished removes PATH.tmp.
class SafetensorsWriter {
 public:
  struct Tensor {
    std::string name;
    std::vector<int64_t> shape;
  };
  SafetensorsWriter(const std::string& path, std::vector<Tensor> tensors,
                    const std::map<std::string, std::string>& metadata);
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;
  // `count` more elements of the tensors in order (a tensor may come in several calls).
  void append(const float* data, int64_t count);
  void finish();
  int64_t data_bytes() const { return data_bytes_; }

 private:
  std::string path_, tmp_;
  int fd_ = -1, direct_fd_ = -1;  // the file; the same opened with O_DIRECT (-1: not available)
  int64_t data_bytes_ = 0, appended_ = 0, written_ = 0;
  // Bytes go out in aligned blocks of kBlock from this aligned buffer: the file's full blocks
  // with direct I/O, past the page cache (twice dd's buffered rate on small machines).
  std::unique_ptr<char, void (*)(void*)> buffer_;
  int64_t buffered_ = 0;
  void put(const char* src, int64_t n);
  void flush(bool last);
};

// Reads a safetensors file's header; tensors are read on demand. Every malformed header or
// out-of-range offset is a UserError naming the file.
class SafetensorsReader {
 public:
  explicit SafetensorsReader(const std::string& path);

  struct Info {
    std::string dtype;  // "F32", "F64", "F16", "BF16", ...
    std::vector<int64_t> shape;
    int64_t begin = 0, end = 0;  // byte range in the data section
  };
  const std::string& path() const { return path_; }
  const std::map<std::string, Info>& tensors() const { return tensors_; }
  const Info* find(const std::string& name) const;
  // The tensor's elements (F32, F64, F16 or BF16) as doubles, in stored (row-major) order.
  std::vector<double> read(const std::string& name) const;
  // The same into `dst` (numel elements), converted to its type, read in blocks of a few MiB so
  // that no second copy of the tensor is held.
  void read_into(const std::string& name, float* dst) const;
  void read_into(const std::string& name, double* dst) const;

 private:
  std::string path_;
  int64_t data_start_ = 0;
  std::map<std::string, Info> tensors_;
  template <typename T>
  void read_as(const std::string& name, T* dst) const;
};

// The weights of a Hugging Face model directory: model.safetensors, or the shards that
// model.safetensors.index.json names (its weight_map: tensor name -> file). Every file is
// opened and its header checked up front; a shard the index names that is missing, or that
// lacks a tensor the index places in it, is a UserError naming the index and the file.
class SafetensorsSet {
 public:
  explicit SafetensorsSet(const std::string& dir);
  // The file that holds tensor `name`, or nullptr.
  const SafetensorsReader* find(const std::string& name) const;
  // Every tensor name, sorted.
  std::vector<std::string> names() const;
  // What was read, for messages: "DIR/model.safetensors" or "DIR/model.safetensors.index.json".
  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::vector<std::unique_ptr<SafetensorsReader>> files_;
  std::map<std::string, const SafetensorsReader*> where_;
};

}  // namespace tessera
