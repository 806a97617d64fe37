#include "launch/tensorboard.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "runtime/error.h"

namespace tessera {
namespace {

std::array<uint32_t, 256> crc32c_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;  // reflected 0x1EDC6F41
    t[i] = c;
  }
  return t;
}

// TFRecord stores the CRC rotated and offset, so that a CRC of data holding CRCs stays strong.
uint32_t masked(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

// Protocol-buffer wire format: varints, and keys (field << 3 | wire type).
void put_varint(std::string& out, uint64_t v) {
  for (; v >= 0x80; v >>= 7) out += static_cast<char>((v & 0x7f) | 0x80);
  out += static_cast<char>(v);
}
template <typename T>
void put_fixed(std::string& out, T v) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &v, sizeof(T));  // little-endian hosts only (x86-64, aarch64)
  out.append(bytes, sizeof(T));
}
void put_bytes(std::string& out, int field, std::string_view s) {
  put_varint(out, static_cast<uint64_t>(field) << 3 | 2);
  put_varint(out, s.size());
  out.append(s);
}

// Event fields: wall_time = 1 (double), step = 2 (int64), file_version = 3 (string),
// summary = 5 (Summary). Summary: value = 1 (repeated Value); Value: tag = 1 (string),
// simple_value = 2 (float).
std::string event_header(double wall_time, int64_t step) {
  std::string e;
  put_varint(e, 1 << 3 | 1);
  put_fixed(e, wall_time);
  put_varint(e, 2 << 3 | 0);
  put_varint(e, static_cast<uint64_t>(step));
  return e;
}

double now_unix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

uint32_t crc32c(const void* data, size_t n) {
  static const std::array<uint32_t, 256> table = crc32c_table();
  uint32_t c = ~0u;
  for (const auto* p = static_cast<const unsigned char*>(data); n--; ++p) c = table[(c ^ *p) & 0xff] ^ (c >> 8);
  return ~c;
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir) : file_(nullptr, std::fclose) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  path_ = dir + "/events.out.tfevents." + std::to_string(static_cast<long long>(std::time(nullptr))) + "." + host;
  file_.reset(std::fopen(path_.c_str(), "ab"));
  if (!file_) throw UserError(path_ + ": cannot create (log.dir not writable?)");
  std::string e = event_header(now_unix(), 0);
  put_bytes(e, 3, "brain.Event:2");
  record(e);
}

void TensorBoardWriter::scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values) {
  std::string summary;
  for (const auto& [tag, value] : values) {
    std::string v;
    put_bytes(v, 1, tag);
    put_varint(v, 2 << 3 | 5);
    put_fixed(v, static_cast<float>(value));
    put_bytes(summary, 1, v);
  }
  std::string e = event_header(now_unix(), step);
  put_bytes(e, 5, summary);
  record(e);
}

void TensorBoardWriter::record(std::string_view data) {
  std::string r;
  put_fixed(r, static_cast<uint64_t>(data.size()));
  put_fixed(r, masked(crc32c(r.data(), 8)));
  r.append(data);
  put_fixed(r, masked(crc32c(data.data(), data.size())));
  if (std::fwrite(r.data(), 1, r.size(), file_.get()) != r.size() || std::fflush(file_.get()) != 0)
    throw UserError(path_ + ": cannot write (disk full?)");
}

}  // namespace tessera
