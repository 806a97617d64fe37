// MPI: the process-wide world (init/finalize) and the communicator for CPU tensors.
#pragma once
#include <mpi.h>

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "parallel/comm.h"

namespace tessera {

// World size announced by the launcher (mpirun, srun) before any MPI call; 1 without one.
int launcher_world_size();

// Owns MPI's lifetime: MPI_Init_thread in the constructor, MPI_Finalize in the destructor.
// Construct once, in main's thread, only when launched as several ranks. While it lives, a
// fatal check on any rank aborts every rank (MPI_Abort).
class MpiWorld {
 public:
  MpiWorld(int* argc, char*** argv);
  ~MpiWorld();
  MpiWorld(const MpiWorld&) = delete;
  MpiWorld& operator=(const MpiWorld&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_size() const { return local_size_; }  // ranks on this node
  int local_rank() const { return local_rank_; }  // this rank's index among them
  // True when MPI grants MPI_THREAD_MULTIPLE (a progress thread can overlap reductions).
  bool thread_multiple() const { return thread_multiple_; }
  // The communicator over `group` (world ranks, this rank included, same list on every
  // member). Collective over the world: every rank calls it with its own group.
  MPI_Comm split(const std::vector<int>& group) const;
  // Collective: the lowest rank that passes true, or -1 when none does.
  int first_rank_with(bool flag) const;
  // Collective: every rank's `text` becomes rank `root`'s.
  void broadcast(std::string& text, int root) const;
  // Collective: at `root`, every rank's `text` in rank order (empty elsewhere). For short texts
  // (host names, one-line errors): each must fit an int count.
  std::vector<std::string> gather(const std::string& text, int root) const;
  // Collective: `root`'s `bytes` bytes at `data` become the bitwise OR of every rank's (the
  // others' are left as they were). Where each element has one owner and the rest hold zeros,
  // that assembles the owners' values bit for bit (a floating-point sum would turn -0 into +0).
  void or_to_root(void* data, size_t bytes, int root) const;
  // Ends every rank of the job now (a failure only this rank saw).
  [[noreturn]] void abort(int code) const;

 private:
  int rank_ = 0, size_ = 1, local_size_ = 1, local_rank_ = 0;
  bool thread_multiple_ = false;
};

// Collectives over an MPI communicator on host memory. Split-phase collectives run on a
// progress thread (blocking MPI calls there) when MPI_THREAD_MULTIPLE is available, so a
// reduction advances while the caller computes; otherwise they are non-blocking MPI calls
// progressed in finish(). Sends are MPI_Isend.
class MpiComm final : public Communicator {
 public:
  // Takes ownership of `comm` (freed in the destructor).
  MpiComm(std::string name, MPI_Comm comm, bool progress_thread);
  ~MpiComm() override;
  MPI_Comm handle() const { return comm_; }

 protected:
  CommHandle do_start(Kind kind, Tensor out, Tensor in, int peer_or_root, int tag) override;
  void do_all_reduce_max(Tensor t) override;
  void do_recv(Tensor t, int peer, int tag) override;
  void do_finish(CommHandle h) override;
  void do_finish_all() override;

 private:
  struct Job {
    CommHandle id;
    Kind kind;
    Tensor out, in;
    int root;
  };
  void run_blocking(const Job& job);
  const void* gather_send(const Tensor& out, const Tensor& in) const;
  void progress_loop();

  MPI_Comm comm_;
  CommHandle next_ = 0;
  std::map<CommHandle, MPI_Request> requests_;  // non-blocking MPI calls in flight
  // Progress thread: jobs run in order; `done_` is the id of the last finished job + 1.
  bool threaded_ = false;
  std::thread worker_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  std::vector<CommHandle> queued_ids_;  // started on the thread, not yet finished by the caller
  CommHandle done_ = 0;
  bool stop_ = false;
};

}  // namespace tessera
