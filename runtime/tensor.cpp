#include "runtime/tensor.h"

#include "runtime/error.h"

namespace tessera {

std::string Shape::str() const {
  std::string s = "(";
  for (int i = 0; i < rank; ++i) {
    if (i) s += ", ";
    s += std::to_string(dims[i]);
  }
  return s + ")";
}

Tensor Tensor::view(Shape s) const {
  TS_ASSERT(s.numel() == numel(), "view " + s.str() + " of " + shape.str());
  Tensor t = *this;
  t.shape = s;
  return t;
}

Tensor Tensor::slice_rows(int64_t begin, int64_t count) const {
  TS_ASSERT(shape.rank >= 1 && begin >= 0 && begin + count <= shape[0], "slice_rows out of range");
  Tensor t = *this;
  const int64_t row = shape[0] ? numel() / shape[0] : 0;
  t.data = static_cast<char*>(data) + begin * row * dtype_size(dtype);
  t.shape.dims[0] = count;
  return t;
}

}  // namespace tessera
