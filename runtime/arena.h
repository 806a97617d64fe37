// Arena: one allocation per purpose (parameters, gradients, activations, optimizer state),
// handed out as views. Sizing is done by running the same layout code twice: first against a
// measuring arena (no memory, only offsets), then against a real one of exactly that size, so
// the size table lives in one place — the code that carves the views.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "runtime/device.h"
#include "runtime/tensor.h"

namespace tessera {

class Arena {
 public:
  // A measuring arena: take() returns views with null data and records the bytes needed.
  explicit Arena(std::string name, DeviceKind device);
  // A real arena of `bytes` on `dev`, zero-initialised (host) / allocated (device).
  Arena(std::string name, Device& dev, size_t bytes);
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  Arena(Arena&& o) noexcept;

  // Next view of `shape`, aligned to 256 bytes (GEMM- and vector-friendly).
  Tensor take(Shape shape, DType dtype);
  bool measuring() const { return base_ == nullptr; }
  size_t used() const { return used_; }
  size_t capacity() const { return capacity_; }
  const std::string& name() const { return name_; }
  // Start handing out views from the beginning again (the memory is reused, not cleared).
  void reset() { used_ = 0; }

 private:
  std::string name_;
  DeviceKind device_;
  Device* dev_ = nullptr;
  char* base_ = nullptr;
  size_t capacity_ = 0;
  size_t used_ = 0;
};

// "params 1.2 MiB | grads ..." for the log and tests.
std::string arena_report(const std::vector<const Arena*>& arenas);
std::string format_bytes(double bytes);

}  // namespace tessera
