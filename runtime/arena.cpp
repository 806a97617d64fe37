#include "runtime/arena.h"

#include <cstdio>

#include "runtime/error.h"

namespace tessera {

Arena::Arena(std::string name, DeviceKind device) : name_(std::move(name)), device_(device) {}

Arena::Arena(std::string name, Device& dev, size_t bytes)
    : name_(std::move(name)), device_(dev.kind()), dev_(&dev), capacity_(bytes) {
  base_ = static_cast<char*>(dev.allocate(bytes));
  if (bytes == 0) base_ = nullptr;
}

Arena::~Arena() {
  if (dev_ && base_) dev_->release(base_);
}

Arena::Arena(Arena&& o) noexcept
    : name_(std::move(o.name_)), device_(o.device_), dev_(o.dev_), base_(o.base_),
      capacity_(o.capacity_), used_(o.used_) {
  o.base_ = nullptr;
  o.dev_ = nullptr;
}

Tensor Arena::take(Shape shape, DType dtype) {
  const size_t offset = (used_ + 255) / 256 * 256;
  const size_t bytes = static_cast<size_t>(shape.numel()) * dtype_size(dtype);
  Tensor t;
  t.dtype = dtype;
  t.device = device_;
  t.shape = shape;
  if (dev_) {
    TS_ASSERT(offset + bytes <= capacity_,
              "arena '" + name_ + "' overflow: layout differs between measuring and allocating");
    t.data = base_ + offset;
  }
  used_ = offset + bytes;
  return t;
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", bytes, units[u]);
  return buf;
}

std::string arena_report(const std::vector<const Arena*>& arenas) {
  std::string s;
  size_t total = 0;
  for (const Arena* a : arenas) {
    if (!s.empty()) s += " | ";
    s += a->name() + " " + format_bytes(static_cast<double>(a->capacity()));
    total += a->capacity();
  }
  return s + " | total " + format_bytes(static_cast<double>(total));
}

}  // namespace tessera
