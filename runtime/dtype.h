// Element types and devices a tensor view can describe.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tessera {

enum class DType : uint8_t { f32, f64, bf16, i32 };
enum class DeviceKind : uint8_t { cpu, cuda };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::bf16: return 2;
    case DType::i32: return 4;
  }
  return 0;
}

constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::bf16: return "bf16";
    case DType::i32: return "i32";
  }
  return "?";
}

constexpr std::string_view device_name(DeviceKind d) {
  return d == DeviceKind::cpu ? "cpu" : "cuda";
}

}  // namespace tessera
