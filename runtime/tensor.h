// Tensor: a non-owning view of memory that an arena (or a mapped file) owns.
// Row-major, contiguous; up to four dimensions. Copying a view copies the pointer only.
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "runtime/dtype.h"

namespace tessera {

struct Shape {
  std::array<int64_t, 4> dims{0, 0, 0, 0};
  int rank = 0;

  Shape() = default;
  Shape(std::initializer_list<int64_t> d) {
    for (int64_t v : d) dims[rank++] = v;
  }
  int64_t operator[](int i) const { return dims[i]; }
  int64_t numel() const {
    if (rank == 0) return 0;
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= dims[i];
    return n;
  }
  bool operator==(const Shape& o) const {
    if (rank != o.rank) return false;
    for (int i = 0; i < rank; ++i)
      if (dims[i] != o.dims[i]) return false;
    return true;
  }
  std::string str() const;  // "(2, 3, 4)"
};

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::f32;
  DeviceKind device = DeviceKind::cpu;
  Shape shape;

  int64_t numel() const { return shape.numel(); }
  size_t bytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  bool empty() const { return data == nullptr; }
  int64_t dim(int i) const { return shape[i]; }
  // Rows when viewed as a matrix whose last dimension is the row length.
  int64_t rows() const { return shape.rank ? numel() / shape[shape.rank - 1] : 0; }
  int64_t cols() const { return shape.rank ? shape[shape.rank - 1] : 0; }

  template <typename T>
  T* ptr() const { return static_cast<T*>(data); }

  // Same memory, another shape with the same number of elements.
  Tensor view(Shape s) const;
  // Rows [begin, begin + count) along the first dimension.
  Tensor slice_rows(int64_t begin, int64_t count) const;
};

}  // namespace tessera
