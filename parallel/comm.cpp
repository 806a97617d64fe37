#include "parallel/comm.h"

#include <chrono>
#include <cstdio>

#include "parallel/flight_recorder.h"

#include "runtime/error.h"
#include "runtime/ops.h"

namespace tessera {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::string size_text(double bytes) {
  char b[32];
  if (bytes >= 1 << 20) std::snprintf(b, sizeof b, "%.1f MB", bytes / (1 << 20));
  else std::snprintf(b, sizeof b, "%.1f KB", bytes / 1024);
  return b;
}

}  // namespace

double CommStats::total_bytes() const {
  return all_reduce.bytes + reduce_scatter.bytes + all_gather.bytes + broadcast.bytes + p2p.bytes;
}
double CommStats::total_wait_ms() const {
  return all_reduce.wait_ms + reduce_scatter.wait_ms + all_gather.wait_ms + broadcast.wait_ms +
         p2p.wait_ms;
}

CommCounters& Communicator::counters(Kind kind) {
  switch (kind) {
    case Kind::all_reduce: return stats_.all_reduce;
    case Kind::reduce_scatter: return stats_.reduce_scatter;
    case Kind::all_gather: return stats_.all_gather;
    case Kind::broadcast: return stats_.broadcast;
    case Kind::send: break;
  }
  return stats_.p2p;
}

// Ring algorithms: what one rank sends. A 1-rank group moves nothing.
double Communicator::bus_bytes(Kind kind, const Tensor& out, const Tensor& in) const {
  const double n = size_;
  if (size_ == 1) return 0;
  switch (kind) {
    case Kind::all_reduce: return 2.0 * (n - 1) / n * static_cast<double>(out.bytes());
    case Kind::reduce_scatter: return (n - 1) / n * static_cast<double>(in.bytes());
    case Kind::all_gather: return (n - 1) / n * static_cast<double>(out.bytes());
    case Kind::broadcast:
    case Kind::send: return static_cast<double>(out.bytes());
  }
  return 0;
}

void Communicator::set_recorder(FlightRecorder* recorder, const std::vector<int>& world_ranks) {
  recorder_ = recorder;
  world_ranks_ = world_ranks;
  if (recorder_ && size_ > 1) recorder_comm_ = recorder_->add_comm(name_, world_ranks);
}

std::string Communicator::world_rank(int group_rank) const {
  const bool known = group_rank >= 0 && group_rank < static_cast<int>(world_ranks_.size());
  return std::to_string(known ? world_ranks_[group_rank] : group_rank);
}

int64_t Communicator::record(const std::string& what) {
  return recorder_comm_ >= 0 ? recorder_->issue(recorder_comm_, what) : -1;
}

CommHandle Communicator::start(Kind kind, Tensor out, Tensor in, int peer_or_root, int tag) {
  CommCounters& c = counters(kind);
  ++c.calls;
  c.bytes += bus_bytes(kind, out, in);
  if (size_ == 1 && kind != Kind::reduce_scatter && kind != Kind::all_gather) return -1;
  int64_t seq = -1;
  if (recorder_comm_ >= 0) {
    const std::string bytes = size_text(static_cast<double>(kind == Kind::reduce_scatter ? in.bytes() : out.bytes()));
    switch (kind) {
      case Kind::all_reduce: seq = record("all-reduce " + bytes); break;
      case Kind::reduce_scatter: seq = record("reduce-scatter " + bytes); break;
      case Kind::all_gather: seq = record("all-gather " + bytes); break;
      case Kind::broadcast: seq = record("broadcast " + bytes + " from rank " + world_rank(peer_or_root)); break;
      case Kind::send: seq = record("send " + bytes + " to rank " + world_rank(peer_or_root)); break;
    }
  }
  const CommHandle h = do_start(kind, out, in, peer_or_root, tag);
  if (seq >= 0) {
    if (h >= 0) recorded_[h] = seq;
    else recorder_->done(seq);
  }
  return h;
}

void Communicator::complete(CommHandle h) {
  const auto it = recorded_.find(h);
  if (it == recorded_.end()) return do_finish(h);
  recorder_->wait(it->second);
  do_finish(h);
  recorder_->done(it->second);
  recorded_.erase(it);
}

void Communicator::all_reduce(Tensor t, ReduceOp op) {
  if (op == ReduceOp::max) {
    ++stats_.all_reduce.calls;
    stats_.all_reduce.bytes += bus_bytes(Kind::all_reduce, t, t);
    if (size_ == 1) return;
    const auto t0 = Clock::now();
    const int64_t seq = record("all-reduce (max) " + size_text(static_cast<double>(t.bytes())));
    if (seq >= 0) recorder_->wait(seq);
    do_all_reduce_max(t);
    if (seq >= 0) recorder_->done(seq);
    stats_.all_reduce.wait_ms += ms_since(t0);
    return;
  }
  const auto t0 = Clock::now();
  const CommHandle h = start(Kind::all_reduce, t, t, 0, 0);
  if (h >= 0) complete(h);
  if (h >= 0) stats_.all_reduce.wait_ms += ms_since(t0);
}

void Communicator::reduce_scatter(Tensor out, Tensor in) {
  TS_ASSERT(in.numel() == out.numel() * size_, "reduce_scatter: in must be size * out");
  const auto t0 = Clock::now();
  if (const CommHandle h = start(Kind::reduce_scatter, out, in, 0, 0); h >= 0) complete(h);
  stats_.reduce_scatter.wait_ms += ms_since(t0);
}

void Communicator::all_gather(Tensor out, Tensor in) {
  TS_ASSERT(out.numel() == in.numel() * size_, "all_gather: out must be size * in");
  const auto t0 = Clock::now();
  if (const CommHandle h = start(Kind::all_gather, out, in, 0, 0); h >= 0) complete(h);
  stats_.all_gather.wait_ms += ms_since(t0);
}

void Communicator::broadcast(Tensor t, int root) {
  const auto t0 = Clock::now();
  const CommHandle h = start(Kind::broadcast, t, t, root, 0);
  if (h >= 0) complete(h);
  if (h >= 0) stats_.broadcast.wait_ms += ms_since(t0);
}

CommHandle Communicator::send_start(Tensor t, int peer, int tag) {
  TS_ASSERT(peer != rank_, "send to self");
  return start(Kind::send, t, t, peer, tag);
}

void Communicator::recv(Tensor t, int peer, int tag) {
  ++stats_.p2p.calls;
  const auto t0 = Clock::now();
  const int64_t seq = record("recv " + size_text(static_cast<double>(t.bytes())) + " from rank " + world_rank(peer));
  if (seq >= 0) recorder_->wait(seq);
  do_recv(t, peer, tag);
  if (seq >= 0) recorder_->done(seq);
  stats_.p2p.wait_ms += ms_since(t0);
}

CommHandle Communicator::all_reduce_start(Tensor t) { return start(Kind::all_reduce, t, t, 0, 0); }
CommHandle Communicator::reduce_scatter_start(Tensor out, Tensor in) {
  TS_ASSERT(in.numel() == out.numel() * size_, "reduce_scatter: in must be size * out");
  return start(Kind::reduce_scatter, out, in, 0, 0);
}
CommHandle Communicator::all_gather_start(Tensor out, Tensor in) {
  TS_ASSERT(out.numel() == in.numel() * size_, "all_gather: out must be size * in");
  return start(Kind::all_gather, out, in, 0, 0);
}

// finish() time is charged to all_reduce: the counters that matter per step are the total wait
// and the per-kind bytes, and split-phase work is all gradient reduction.
void Communicator::finish(CommHandle h) {
  if (h < 0) return;
  const auto t0 = Clock::now();
  complete(h);
  stats_.all_reduce.wait_ms += ms_since(t0);
}

void Communicator::finish_all() {
  const auto t0 = Clock::now();
  for (const auto& [h, seq] : recorded_) recorder_->wait(seq);
  do_finish_all();
  for (const auto& [h, seq] : recorded_) recorder_->done(seq);
  recorded_.clear();
  stats_.all_reduce.wait_ms += ms_since(t0);
}

CommHandle LocalComm::do_start(Kind kind, Tensor out, Tensor in, int, int) {
  if ((kind == Kind::reduce_scatter || kind == Kind::all_gather) && out.data != in.data)
    ops::convert(dev_, out, in);
  return -1;
}

void LocalComm::do_recv(Tensor, int, int) { TS_ASSERT(false, "recv on a 1-rank group"); }

}  // namespace tessera
