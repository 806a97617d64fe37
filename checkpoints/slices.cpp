#include "checkpoints/slices.h"

#include <algorithm>

#include "runtime/error.h"

namespace tessera {

int64_t SliceCopy::numel() const {
  int64_t n = 1;
  for (int d = 0; d < rank; ++d) n *= count[d];
  return n;
}

std::vector<SliceCopy> param_slices(const Param& p, int64_t lo, int64_t hi, int64_t buf_offset) {
  const Shape& shape = p.local_shape;
  const int r = shape.rank;
  TS_ASSERT(0 <= lo && lo < hi && hi <= shape.numel(), "slice range outside the parameter");
  int64_t stride[4] = {1, 1, 1, 1};
  for (int d = r - 2; d >= 0; --d) stride[d] = stride[d + 1] * shape[d + 1];

  std::vector<SliceCopy> out;
  int64_t pos = lo;
  while (pos < hi) {
    // The outermost dimension d at which a run of whole sub-blocks starts at pos: the box is
    // 1 along dimensions before d, n along d, full after d; it never wraps past d's extent.
    int d = 0;
    while (pos % stride[d] != 0 || pos + stride[d] > hi) ++d;
    std::array<int64_t, 4> start{};
    for (int k = 0; k < r; ++k) start[k] = pos / stride[k] % shape[k];
    const int64_t n = std::min((hi - pos) / stride[d], shape[d] - start[d]);
    std::array<int64_t, 4> box{};
    for (int k = 0; k < r; ++k) box[k] = k < d ? 1 : k == d ? n : shape[k];

    // Cut along the sharded dimension where parts change; translate to global coordinates.
    const int sd = p.shard_dim;
    int64_t a = sd >= 0 ? start[sd] : 0;
    const int64_t a_end = sd >= 0 ? start[sd] + box[sd] : 1;
    while (a < a_end) {
      SliceCopy c;
      c.rank = r;
      c.buf_offset = buf_offset + (pos - lo);
      c.box_shape = box;
      for (int k = 0; k < r; ++k) c.count[k] = box[k], c.global_start[k] = start[k];
      if (sd >= 0) {
        const int64_t b = std::min(a_end, param_shard_part_end(p, a));
        c.box_start[sd] = a - start[sd];
        c.count[sd] = b - a;
        c.global_start[sd] = param_shard_global(p, a);
        a = b;
      } else {
        a = a_end;
      }
      out.push_back(c);
    }
    pos += n * stride[d];
  }
  return out;
}

}  // namespace tessera
