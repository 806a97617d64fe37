#include "parallel/comm.h"

#include <chrono>

#include "runtime/error.h"
#include "runtime/ops.h"

namespace tessera {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
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

CommHandle Communicator::start(Kind kind, Tensor out, Tensor in, int peer_or_root, int tag) {
  CommCounters& c = counters(kind);
  ++c.calls;
  c.bytes += bus_bytes(kind, out, in);
  if (size_ == 1 && kind != Kind::reduce_scatter && kind != Kind::all_gather) return -1;
  return do_start(kind, out, in, peer_or_root, tag);
}

void Communicator::all_reduce(Tensor t, ReduceOp op) {
  if (op == ReduceOp::max) {
    ++stats_.all_reduce.calls;
    stats_.all_reduce.bytes += bus_bytes(Kind::all_reduce, t, t);
    if (size_ == 1) return;
    const auto t0 = Clock::now();
    do_all_reduce_max(t);
    stats_.all_reduce.wait_ms += ms_since(t0);
    return;
  }
  const auto t0 = Clock::now();
  const CommHandle h = start(Kind::all_reduce, t, t, 0, 0);
  if (h >= 0) do_finish(h);
  if (h >= 0) stats_.all_reduce.wait_ms += ms_since(t0);
}

void Communicator::reduce_scatter(Tensor out, Tensor in) {
  TS_ASSERT(in.numel() == out.numel() * size_, "reduce_scatter: in must be size * out");
  const auto t0 = Clock::now();
  if (const CommHandle h = start(Kind::reduce_scatter, out, in, 0, 0); h >= 0) do_finish(h);
  stats_.reduce_scatter.wait_ms += ms_since(t0);
}

void Communicator::all_gather(Tensor out, Tensor in) {
  TS_ASSERT(out.numel() == in.numel() * size_, "all_gather: out must be size * in");
  const auto t0 = Clock::now();
  if (const CommHandle h = start(Kind::all_gather, out, in, 0, 0); h >= 0) do_finish(h);
  stats_.all_gather.wait_ms += ms_since(t0);
}

void Communicator::broadcast(Tensor t, int root) {
  const auto t0 = Clock::now();
  const CommHandle h = start(Kind::broadcast, t, t, root, 0);
  if (h >= 0) do_finish(h);
  if (h >= 0) stats_.broadcast.wait_ms += ms_since(t0);
}

CommHandle Communicator::send_start(Tensor t, int peer, int tag) {
  TS_ASSERT(peer != rank_, "send to self");
  return start(Kind::send, t, t, peer, tag);
}

void Communicator::recv(Tensor t, int peer, int tag) {
  ++stats_.p2p.calls;
  const auto t0 = Clock::now();
  do_recv(t, peer, tag);
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
  do_finish(h);
  stats_.all_reduce.wait_ms += ms_since(t0);
}

void Communicator::finish_all() {
  const auto t0 = Clock::now();
  do_finish_all();
  stats_.all_reduce.wait_ms += ms_since(t0);
}

CommHandle LocalComm::do_start(Kind kind, Tensor out, Tensor in, int, int) {
  if ((kind == Kind::reduce_scatter || kind == Kind::all_gather) && out.data != in.data)
    ops::convert(dev_, out, in);
  return -1;
}

void LocalComm::do_recv(Tensor, int, int) { TS_ASSERT(false, "recv on a 1-rank group"); }

}  // namespace tessera
