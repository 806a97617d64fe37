// Where a rank's elements of a parameter sit in the global tensor, as rectangular boxes.
//
// A rank holds a parameter's local tensor (its tensor-parallel slice) and, under ZeRO-1, owns
// only a flat element range [lo, hi) of it. Such a range is cut into boxes that are each
// contiguous in the local tensor (a partial row, whole rows, whole planes, ...), and each box
// is cut again where the sharded dimension crosses from one part (q | k | v) to the next, so
// every resulting piece is one hyperslab of the global tensor. A checkpoint shard stores one
// dataset per piece; the index maps it back onto the global tensor; a loading rank reads the
// same pieces of its own range from the global tensor.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "model/params.h"

namespace tessera {

struct SliceCopy {
  int rank = 0;                        // the tensor's rank (number of dimensions)
  int64_t buf_offset = 0;              // first element of the contiguous local box in the buffer
  std::array<int64_t, 4> box_shape{};  // that box's extent (it is contiguous in the buffer)
  std::array<int64_t, 4> box_start{};  // the piece's start inside the box
  std::array<int64_t, 4> count{};      // the piece's extent
  std::array<int64_t, 4> global_start{};  // the piece's start in the global tensor
  int64_t numel() const;
};

// Pieces of local elements [lo, hi) of `p` (0 <= lo < hi <= local numel), whose data sits in a
// buffer with local element lo at `buf_offset`. Together they cover [lo, hi) exactly once.
std::vector<SliceCopy> param_slices(const Param& p, int64_t lo, int64_t hi, int64_t buf_offset);

}  // namespace tessera
