// The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON header
// naming every tensor's dtype, shape and [begin, end) byte range in the data that follows, and
// "__metadata__" (string to string). Used by `tessera export` and `tessera import`.
#pragma once
#include <cstdint>
#include <map>
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

 private:
  std::string path_;
  int64_t data_start_ = 0;
  std::map<std::string, Info> tensors_;
};

}  // namespace tessera
