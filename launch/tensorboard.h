// TensorBoard event files (log.tensorboard = true): <log.dir>/tensorboard/events.out.tfevents.*,
// readable by TensorBoard and any TFRecord reader. Each record is TFRecord-framed (length,
// masked CRC-32C of the length, data, masked CRC-32C of the data) and holds one serialized
// `Event` protocol buffer; the few fields written (wall_time, step, file_version, a summary of
// scalar values) are encoded by hand, so no protobuf library is needed.
#pragma once
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tessera {

// CRC-32C (Castagnoli), the checksum TFRecord framing uses.
uint32_t crc32c(const void* data, size_t n);

class TensorBoardWriter {
 public:
  // Creates <dir>/events.out.tfevents.<unix time>.<host> and writes the file-version event.
  // Throws UserError when the directory cannot be created or written.
  explicit TensorBoardWriter(const std::string& dir);
  const std::string& path() const { return path_; }
  // One event at `step` holding the scalars (tag, value); flushed, so TensorBoard sees it live.
  void scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values);

 private:
  void record(std::string_view data);
  std::string path_;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file_;
};

}  // namespace tessera
