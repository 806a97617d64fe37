#include "checkpoints/hf/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <type_traits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "checkpoints/direct_io.h"
#include "runtime/error.h"

namespace tessera {
namespace fs = std::filesystem;
namespace {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

// Header lengths beyond this are not a safetensors file (the reference reader caps at 100 MB).
constexpr uint64_t kMaxHeader = 100u << 20;
// Writes and reads move this many bytes at a time.
constexpr int64_t kWriteBlock = 8 << 20;

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t dtype_bytes(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL" || dtype == "F8_E4M3" || dtype == "F8_E5M2") return 1;
  return 0;
}

double half_to_double(uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
  double v;
  if (exp == 0) v = std::ldexp(frac, -24);
  else if (exp == 31) v = frac ? NAN : INFINITY;
  else v = std::ldexp(frac + 1024, exp - 25);
  return sign ? -v : v;
}

}  // namespace

void safetensors_write(const std::string& path, const std::vector<SafetensorsEntry>& entries,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<SafetensorsWriter::Tensor> tensors;
  for (const SafetensorsEntry& e : entries) tensors.push_back({e.name, e.shape});
  SafetensorsWriter out(path, tensors, metadata);
  for (const SafetensorsEntry& e : entries) out.append(e.data, numel(e.shape));
  out.finish();
}

SafetensorsWriter::SafetensorsWriter(const std::string& path, std::vector<Tensor> tensors,
                                     const std::map<std::string, std::string>& metadata)
    : path_(path), tmp_(path + ".tmp"),
      buffer_(static_cast<char*>(std::aligned_alloc(ckpt::kDirectAlign, kWriteBlock)), std::free) {
  TS_ASSERT(buffer_ != nullptr, "safetensors: out of memory for the write buffer");
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  for (const Tensor& t : tensors) {
    const int64_t bytes = numel(t.shape) * 4;
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {data_bytes_, data_bytes_ + bytes}}};
    data_bytes_ += bytes;
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text += ' ';  // the data starts 8-byte aligned
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw UserError(tmp_ + ": cannot create (" + std::strerror(errno) + "; is the output directory writable?)");
  direct_fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CLOEXEC | O_DIRECT);
  const uint64_t n = text.size();
  put(reinterpret_cast<const char*>(&n), 8);
  put(text.data(), static_cast<int64_t>(text.size()));
}

SafetensorsWriter::~SafetensorsWriter() {
  if (direct_fd_ >= 0) ::close(direct_fd_);
  if (fd_ < 0) return;
  ::close(fd_);
  ::unlink(tmp_.c_str());
}

void SafetensorsWriter::put(const char* src, int64_t n) {
  while (n > 0) {
    const int64_t k = std::min(n, kWriteBlock - buffered_);
    std::memcpy(buffer_.get() + buffered_, src, static_cast<size_t>(k));
    buffered_ += k, src += k, n -= k;
    if (buffered_ == kWriteBlock) flush(false);
  }
}

// A full buffer at an aligned offset goes out directly; the last, partial one buffered.
void SafetensorsWriter::flush(bool last) {
  std::string error;
  const bool direct = direct_fd_ >= 0 && !last && buffered_ % ckpt::kDirectAlign == 0;
  if (!ckpt::pwrite_all(direct ? direct_fd_ : fd_, written_, buffered_, buffer_.get(), error))
    throw UserError(tmp_ + ": cannot write (" + error + ")");
  written_ += buffered_;
  buffered_ = 0;
}

void SafetensorsWriter::append(const float* data, int64_t count) {
  TS_ASSERT(appended_ + count * 4 <= data_bytes_, tmp_ + ": more data than the header announces");
  appended_ += count * 4;
  put(reinterpret_cast<const char*>(data), count * 4);
}

void SafetensorsWriter::finish() {
  TS_ASSERT(appended_ == data_bytes_, tmp_ + ": fewer data than the header announces");
  flush(true);
  if (::fsync(fd_) != 0) throw UserError(tmp_ + ": cannot sync to disk (" + std::strerror(errno) + ")");
  if (direct_fd_ >= 0) ::close(direct_fd_);
  direct_fd_ = -1;
  ::close(fd_);
  fd_ = -1;
  std::error_code ec;
  fs::rename(tmp_, path_, ec);
  if (ec) {
    ::unlink(tmp_.c_str());
    throw UserError(path_ + ": cannot replace (" + ec.message() + ")");
  }
}

SafetensorsReader::SafetensorsReader(const std::string& path) : path_(path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(path + ": cannot open (missing?)");
  std::error_code ec;
  const auto size = static_cast<uint64_t>(fs::file_size(path, ec));
  uint64_t n = 0;
  if (ec || size < 8 || !in.read(reinterpret_cast<char*>(&n), 8))
    throw UserError(path + ": not a safetensors file (shorter than its 8-byte header length)");
  if (n > kMaxHeader || n > size - 8)
    throw UserError(path + ": not a safetensors file (header length " + std::to_string(n) +
                    " does not fit the file of " + std::to_string(size) + " bytes)");
  std::string text(n, '\0');
  if (!in.read(text.data(), static_cast<std::streamsize>(n)))
    throw UserError(path + ": cannot read the header");
  data_start_ = static_cast<int64_t>(8 + n);
  const int64_t data_bytes = static_cast<int64_t>(size) - data_start_;
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw UserError(path + ": the safetensors header is not valid JSON (" + std::string(e.what()) + ")");
  }
  if (!header.is_object()) throw UserError(path + ": the safetensors header is not a JSON object");
  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__") continue;
    const std::string where = path + ": tensor " + name + ": ";
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      throw UserError(where + "needs dtype, shape and data_offsets");
    Info info;
    try {
      info.dtype = v.at("dtype").get<std::string>();
      info.shape = v.at("shape").get<std::vector<int64_t>>();
      const auto off = v.at("data_offsets").get<std::vector<int64_t>>();
      if (off.size() != 2) throw UserError(where + "data_offsets must be [begin, end]");
      info.begin = off[0];
      info.end = off[1];
    } catch (const nlohmann::json::exception& e) {
      throw UserError(where + "malformed entry (" + std::string(e.what()) + ")");
    }
    for (int64_t d : info.shape)
      if (d < 0) throw UserError(where + "negative dimension");
    const int64_t elem = dtype_bytes(info.dtype);
    if (elem == 0) throw UserError(where + "unknown dtype " + info.dtype);
    if (info.begin < 0 || info.end < info.begin || info.end > data_bytes)
      throw UserError(where + "data_offsets [" + std::to_string(info.begin) + ", " +
                      std::to_string(info.end) + ") lie outside the " + std::to_string(data_bytes) +
                      " data bytes (truncated file?)");
    if (info.end - info.begin != numel(info.shape) * elem)
      throw UserError(where + "data_offsets span " + std::to_string(info.end - info.begin) +
                      " bytes, its shape and dtype need " + std::to_string(numel(info.shape) * elem));
    tensors_[name] = std::move(info);
  }
}

const SafetensorsReader::Info* SafetensorsReader::find(const std::string& name) const {
  const auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

std::vector<double> SafetensorsReader::read(const std::string& name) const {
  const Info* info = find(name);
  if (!info) throw UserError(path_ + ": tensor " + name + " is missing");
  std::vector<double> out(static_cast<size_t>(numel(info->shape)));
  read_into(name, out.data());
  return out;
}

void SafetensorsReader::read_into(const std::string& name, float* dst) const { read_as(name, dst); }
void SafetensorsReader::read_into(const std::string& name, double* dst) const { read_as(name, dst); }

template <typename T>
void SafetensorsReader::read_as(const std::string& name, T* dst) const {
  const Info* info = find(name);
  if (!info) throw UserError(path_ + ": tensor " + name + " is missing");
  const std::string& t = info->dtype;
  if (t != "F32" && t != "F64" && t != "F16" && t != "BF16")
    throw UserError(path_ + ": tensor " + name + " has dtype " + t +
                    " (weights must be F32, F64, F16 or BF16)");
  const int64_t elem = dtype_bytes(t), n = numel(info->shape);
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw UserError(path_ + ": cannot open (" + std::strerror(errno) + ")");
  ::posix_fadvise(fd, data_start_ + info->begin, info->end - info->begin, POSIX_FADV_SEQUENTIAL);
  // Same-type F32 lands in place; everything else goes through a block-sized staging buffer.
  const bool in_place = std::is_same_v<T, float> ? t == "F32" : t == "F64";
  std::vector<char> raw(in_place ? 0 : static_cast<size_t>(kWriteBlock));
  const int64_t per_block = kWriteBlock / elem;
  for (int64_t i = 0; i < n; i += per_block) {
    const int64_t k = std::min(per_block, n - i);
    char* buf = in_place ? reinterpret_cast<char*>(dst + i) : raw.data();
    const int64_t want = k * elem, at = data_start_ + info->begin + i * elem;
    for (int64_t got = 0; got < want;) {
      const ssize_t r = ::pread(fd, buf + got, static_cast<size_t>(want - got), at + got);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        ::close(fd);
        throw UserError(path_ + ": cannot read tensor " + name + " (truncated file?)");
      }
      got += r;
    }
    if (in_place) continue;
    for (int64_t j = 0; j < k; ++j) {
      const char* p = buf + j * elem;
      if (t == "F32") {
        float f;
        std::memcpy(&f, p, 4);
        dst[i + j] = static_cast<T>(f);
      } else if (t == "F64") {
        double d;
        std::memcpy(&d, p, 8);
        dst[i + j] = static_cast<T>(d);
      } else {
        uint16_t h;
        std::memcpy(&h, p, 2);
        if (t == "F16") {
          dst[i + j] = static_cast<T>(half_to_double(h));
        } else {
          const uint32_t bits = static_cast<uint32_t>(h) << 16;
          float f;
          std::memcpy(&f, &bits, 4);
          dst[i + j] = static_cast<T>(f);
        }
      }
    }
  }
  ::close(fd);
}

SafetensorsSet::SafetensorsSet(const std::string& dir) {
  const std::string single = dir + "/model.safetensors", index = dir + "/model.safetensors.index.json";
  std::error_code ec;
  if (!fs::exists(index, ec)) {
    if (!fs::exists(single, ec))
      throw UserError(dir + ": holds neither model.safetensors nor model.safetensors.index.json");
    source_ = single;
    files_.push_back(std::make_unique<SafetensorsReader>(single));
    for (const auto& [name, info] : files_.back()->tensors()) where_[name] = files_.back().get();
    return;
  }
  source_ = index;
  nlohmann::json j;
  {
    std::ifstream in(index);
    if (!in) throw UserError(index + ": cannot read");
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error& e) {
      throw UserError(index + ": not valid JSON (" + std::string(e.what()) + ")");
    }
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    throw UserError(index + ": expected a JSON object with a weight_map object");
  std::map<std::string, const SafetensorsReader*> by_file;
  for (const auto& [name, file] : j["weight_map"].items()) {
    if (!file.is_string()) throw UserError(index + ": weight_map[\"" + name + "\"] is not a file name");
    const std::string f = file.get<std::string>();
    if (f.empty() || f.find('/') != std::string::npos || f == "..")
      throw UserError(index + ": weight_map[\"" + name + "\"] = \"" + f + "\" is not a file of " + dir);
    auto it = by_file.find(f);
    if (it == by_file.end()) {
      if (!fs::exists(dir + "/" + f, ec))
        throw UserError(index + ": shard " + f + " is missing (it holds " + name + " and others)");
      files_.push_back(std::make_unique<SafetensorsReader>(dir + "/" + f));
      it = by_file.emplace(f, files_.back().get()).first;
    }
    if (!it->second->find(name))
      throw UserError(index + ": weight_map places " + name + " in " + f + ", which does not hold it");
    where_[name] = it->second;
  }
}

const SafetensorsReader* SafetensorsSet::find(const std::string& name) const {
  const auto it = where_.find(name);
  return it == where_.end() ? nullptr : it->second;
}

std::vector<std::string> SafetensorsSet::names() const {
  std::vector<std::string> out;
  for (const auto& [name, file] : where_) out.push_back(name);
  return out;
}

}  // namespace tessera
