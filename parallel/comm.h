// Communicator: the collectives of one group of ranks (one parallel axis). Objects are passed
// explicitly; there is no global communicator state. Three implementations:
//   LocalComm (size 1, no MPI), MpiComm (CPU tensors), NcclComm (CUDA tensors).
// Every call counts the bytes it moves per rank under the ring algorithm (the analytic bus
// volume: all-reduce 2(n-1)/n of the buffer, reduce-scatter and all-gather (n-1)/n of the full
// buffer, send/broadcast the buffer) and the wall time the host spent waiting on it.
//
// Split-phase calls (`*_start`) return a handle; `finish(handle)` completes it. Between the two
// the buffers belong to the communicator. A handle must be finished on the thread that
// started it, and handles of one communicator finish in the order they started.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "runtime/device.h"
#include "runtime/tensor.h"

namespace tessera {

class FlightRecorder;

enum class ReduceOp { sum, max };

// Per-kind counters since the last reset.
struct CommCounters {
  int64_t calls = 0;
  double bytes = 0;    // analytic per-rank bus bytes
  double wait_ms = 0;  // host time blocked in the call (blocking ops) or in finish()
};

struct CommStats {
  CommCounters all_reduce, reduce_scatter, all_gather, broadcast, p2p;
  double total_bytes() const;
  double total_wait_ms() const;
};

using CommHandle = int64_t;  // -1: nothing to finish

class Communicator {
 public:
  Communicator(std::string name, int rank, int size) : name_(std::move(name)), rank_(rank), size_(size) {}
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  const std::string& name() const { return name_; }  // "tp", "pp", "dp", "world", ...
  int rank() const { return rank_; }
  int size() const { return size_; }

  // In place over every rank of the group.
  void all_reduce(Tensor t, ReduceOp op = ReduceOp::sum);
  // in (size * n) summed over ranks; rank r receives elements [r*n, (r+1)*n) in out (n).
  void reduce_scatter(Tensor out, Tensor in);
  // in (n) from every rank, concatenated in rank order into out (size * n).
  void all_gather(Tensor out, Tensor in);
  void broadcast(Tensor t, int root);
  // Point-to-point within the group (`peer` is a group rank). Sends never block the caller;
  // the buffer must stay untouched until the send is finished.
  CommHandle send_start(Tensor t, int peer, int tag);
  void recv(Tensor t, int peer, int tag);

  CommHandle all_reduce_start(Tensor t);
  CommHandle reduce_scatter_start(Tensor out, Tensor in);
  CommHandle all_gather_start(Tensor out, Tensor in);
  void finish(CommHandle h);
  // Finishes every outstanding handle.
  void finish_all();

  const CommStats& stats() const { return stats_; }
  void reset_stats() { stats_ = CommStats{}; }

  // Records every operation of a group of several ranks in `recorder` (which must outlive this
  // communicator): what, when issued, when the host began and stopped waiting. `world_ranks`:
  // the members' world ranks in group order. A 1-rank group records nothing but still hands
  // out the recorder (recorder()), for its users to set the step's phase.
  void set_recorder(FlightRecorder* recorder, const std::vector<int>& world_ranks);
  FlightRecorder* recorder() const { return recorder_; }
  // Gives up every operation in flight without waiting for the peers, so that nothing later
  // (a destructor, a device free) blocks on a peer that may never come; the communicator is
  // unusable afterwards. NCCL: ncclCommAbort. MPI: nothing (the job is ended by MPI_Abort or
  // by the launcher when this process exits).
  virtual void abort() {}

 protected:
  enum class Kind { all_reduce, reduce_scatter, all_gather, broadcast, send };
  // A handle is returned by start; blocking calls are start + finish.
  virtual CommHandle do_start(Kind kind, Tensor out, Tensor in, int peer_or_root, int tag) = 0;
  virtual void do_all_reduce_max(Tensor t) = 0;
  virtual void do_recv(Tensor t, int peer, int tag) = 0;
  virtual void do_finish(CommHandle h) = 0;
  virtual void do_finish_all() = 0;

 private:
  CommCounters& counters(Kind kind);
  double bus_bytes(Kind kind, const Tensor& out, const Tensor& in) const;
  CommHandle start(Kind kind, Tensor out, Tensor in, int peer_or_root, int tag);
  void complete(CommHandle h);  // do_finish between the recorder's wait and done
  int64_t record(const std::string& what);  // -1 when not recording
  std::string world_rank(int group_rank) const;

  std::string name_;
  int rank_, size_;
  CommStats stats_;
  FlightRecorder* recorder_ = nullptr;
  int recorder_comm_ = -1;
  std::vector<int> world_ranks_;  // group rank -> world rank, for the recorder's texts
  std::map<CommHandle, int64_t> recorded_;  // handle -> the recorder's seq
};

// The group of one rank: every collective is a copy or nothing.
class LocalComm final : public Communicator {
 public:
  LocalComm(std::string name, Device& dev) : Communicator(std::move(name), 0, 1), dev_(dev) {}

 protected:
  CommHandle do_start(Kind kind, Tensor out, Tensor in, int peer_or_root, int tag) override;
  void do_all_reduce_max(Tensor) override {}
  void do_recv(Tensor t, int peer, int tag) override;
  void do_finish(CommHandle) override {}
  void do_finish_all() override {}

 private:
  Device& dev_;
};

}  // namespace tessera
