// Data-parallel gradient buckets (Megatron's and PyTorch DDP's overlap of the gradient
// all-reduce with backward): contiguous ranges of the flat gradient of about `bucket_bytes`,
// formed from the last parameter backwards (the order gradients complete). A bucket's
// all-reduce starts as soon as every parameter in it is final, while backward goes on; the
// step's finalize waits for them. Without buckets (one data-parallel rank, or ZeRO-1, which
// reduce-scatters the whole range instead) it only tracks which parameters are final.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "parallel/comm.h"
#include "runtime/tensor.h"

namespace tessera {

class GradBuckets {
 public:
  // `ranges[i]`: parameter i's [begin, end) in `flat_grads` (registry order). bucket_bytes
  // <= 0 (or a null dp) makes no buckets.
  GradBuckets(std::vector<std::pair<int64_t, int64_t>> ranges, double bucket_bytes, Tensor flat_grads,
              Communicator* dp);
  // A step begins: every parameter pending again.
  void begin_step();
  // Parameter i's gradient is final on this rank (starts its bucket's all-reduce when it is
  // the bucket's last).
  void param_done(size_t i);
  bool done(size_t i) const { return done_[i] != 0; }
  size_t size() const { return done_.size(); }
  // Waits for every bucket's all-reduce (call after every param_done).
  void finish();
  int num_buckets() const { return static_cast<int>(buckets_.size()); }

 private:
  struct Bucket {
    int64_t begin = 0, end = 0;  // flat gradient range
    int pending = 0;             // parameters whose gradient is not final yet
    CommHandle handle = -1;
  };
  Tensor flat_grads_;
  Communicator* dp_;
  std::vector<Bucket> buckets_;
  std::vector<int> bucket_of_;  // per parameter, -1: none
  std::vector<char> done_;      // per parameter, this step
};

}  // namespace tessera
