#include "checkpoints/hf/safetensors.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "runtime/error.h"

namespace tessera {
namespace fs = std::filesystem;
namespace {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

// Header lengths beyond this are not a safetensors file (the reference reader caps at 100 MB).
constexpr uint64_t kMaxHeader = 100u << 20;

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
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  int64_t offset = 0;
  for (const SafetensorsEntry& e : entries) {
    const int64_t bytes = numel(e.shape) * 4;
    header[e.name] = {{"dtype", "F32"}, {"shape", e.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text += ' ';  // the data starts 8-byte aligned
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw UserError(tmp + ": cannot create (is the output directory writable?)");
    const uint64_t n = text.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const SafetensorsEntry& e : entries)
      out.write(reinterpret_cast<const char*>(e.data), static_cast<std::streamsize>(numel(e.shape) * 4));
    out.close();
    if (!out) throw UserError(tmp + ": cannot write (disk full?)");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw UserError(path + ": cannot replace (" + ec.message() + ")");
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
  std::vector<char> raw(static_cast<size_t>(info->end - info->begin));
  std::ifstream in(path_, std::ios::binary);
  in.seekg(data_start_ + info->begin);
  if (!in || !in.read(raw.data(), static_cast<std::streamsize>(raw.size())))
    throw UserError(path_ + ": cannot read tensor " + name + " (truncated file?)");
  const int64_t n = numel(info->shape);
  std::vector<double> out(static_cast<size_t>(n));
  const std::string& t = info->dtype;
  for (int64_t i = 0; i < n; ++i) {
    const char* p = raw.data();
    if (t == "F32") {
      float f;
      std::memcpy(&f, p + 4 * i, 4);
      out[i] = f;
    } else if (t == "F64") {
      std::memcpy(&out[i], p + 8 * i, 8);
    } else if (t == "F16" || t == "BF16") {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      if (t == "F16") {
        out[i] = half_to_double(h);
      } else {
        const uint32_t bits = static_cast<uint32_t>(h) << 16;
        float f;
        std::memcpy(&f, &bits, 4);
        out[i] = f;
      }
    } else {
      throw UserError(path_ + ": tensor " + name + " has dtype " + t +
                      " (weights must be F32, F64, F16 or BF16)");
    }
  }
  return out;
}

}  // namespace tessera
