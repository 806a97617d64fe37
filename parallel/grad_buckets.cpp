#include "parallel/grad_buckets.h"

#include <algorithm>

#include "runtime/dtype.h"

namespace tessera {

GradBuckets::GradBuckets(std::vector<std::pair<int64_t, int64_t>> ranges, double bucket_bytes,
                         Tensor flat_grads, Communicator* dp)
    : flat_grads_(flat_grads), dp_(dp), bucket_of_(ranges.size(), -1), done_(ranges.size(), 0) {
  if (!dp || bucket_bytes <= 0) return;
  const double elem = static_cast<double>(dtype_size(flat_grads.dtype));
  for (size_t k = ranges.size(); k-- > 0;) {
    const auto [lo, hi] = ranges[k];
    if (buckets_.empty() || static_cast<double>(buckets_.back().end - buckets_.back().begin) * elem >= bucket_bytes)
      buckets_.push_back({lo, hi, 0, -1});
    buckets_.back().begin = lo;
    bucket_of_[k] = static_cast<int>(buckets_.size() - 1);
  }
}

void GradBuckets::begin_step() {
  std::fill(done_.begin(), done_.end(), 0);
  for (Bucket& b : buckets_) b.pending = 0, b.handle = -1;
  for (int b : bucket_of_)
    if (b >= 0) ++buckets_[b].pending;
}

void GradBuckets::param_done(size_t i) {
  done_[i] = 1;
  const int b = bucket_of_[i];
  if (b < 0) return;
  Bucket& bucket = buckets_[b];
  if (--bucket.pending == 0)
    bucket.handle = dp_->all_reduce_start(
        flat_grads_.view({flat_grads_.numel()}).slice_rows(bucket.begin, bucket.end - bucket.begin));
}

void GradBuckets::finish() {
  for (Bucket& b : buckets_) dp_->finish(b.handle);
}

}  // namespace tessera
