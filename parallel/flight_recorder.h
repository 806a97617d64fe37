// FlightRecorder: a ring of the last communication operations one rank issued (which
// communicator, what, at which step, micro-batch and phase, when it was issued, when the host
// began waiting on it, when it finished), so that a hang can be explained after the fact; and
// the heartbeat each rank publishes for its peers' reports. Written by the thread that runs
// the step, read by the watchdog thread (parallel/watchdog.h): every member takes the lock.
#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace tessera {

struct FlightOp {
  int64_t seq = 0;       // this rank's issue order
  int comm = 0;          // index of the communicator (FlightRecorder::add_comm)
  int64_t comm_seq = 0;  // the op's number on its communicator: the same op on every member
  std::string what;      // "all-reduce 1.2 MB", "send 64 KB to pp rank 1"
  int64_t step = -1;
  int micro_batch = -1;
  std::string phase;
  double issued_s = 0, wait_s = -1, done_s = -1;  // seconds since the recorder's start; -1: not yet
};

// What one rank last published about itself (the heartbeat file), as its peers read it.
struct Heartbeat {
  int rank = -1;
  std::string host;
  long pid = 0;
  double wall_s = 0;  // seconds since the Unix epoch when written
  int64_t step = -1;
  int micro_batch = -1;
  std::string phase;
  std::string waiting;                     // the op it waits on, or ""
  std::map<std::string, int64_t> issued;   // communicator -> ops issued on it
};

class FlightRecorder {
 public:
  explicit FlightRecorder(size_t capacity = 256);
  FlightRecorder(const FlightRecorder&) = delete;
  FlightRecorder& operator=(const FlightRecorder&) = delete;

  // A communicator whose ops will be recorded: its name ("dp") and its members' world ranks in
  // group order. Returns its index.
  int add_comm(const std::string& name, const std::vector<int>& world_ranks);
  void set_step(int64_t step);
  void set_phase(int micro_batch, const std::string& phase);  // micro_batch -1: none

  int64_t issue(int comm, const std::string& what);  // returns the op's seq
  void wait(int64_t seq);                            // the host starts waiting on it
  void done(int64_t seq);

  // The op the host has waited on longest, if it waits on one now, and for how long.
  struct Stall {
    FlightOp op;
    double waited_s = 0;
  };
  std::optional<Stall> current_wait() const;
  Heartbeat heartbeat(int rank, const std::string& host, long pid, double wall_s) const;
  const std::string& comm_name(int comm) const { return comms_[comm].name; }
  std::vector<int> comm_ranks(int comm) const;
  // The ring, oldest first, one op a line (the flight-recorder dump).
  std::string dump() const;
  double now_s() const;

 private:
  struct Comm {
    std::string name;
    std::vector<int> ranks;
    int64_t issued = 0;
  };
  FlightOp* find(int64_t seq);  // in the ring, or null once overwritten
  std::string describe(const FlightOp& op) const;

  mutable std::mutex mutex_;
  std::chrono::steady_clock::time_point start_;
  std::vector<FlightOp> ring_;
  size_t capacity_;
  int64_t next_seq_ = 0;
  std::vector<Comm> comms_;
  int64_t step_ = -1;
  int micro_batch_ = -1;
  std::string phase_;
};

// The heartbeat file's text (key = value lines) and back; parse returns nullopt for a torn or
// foreign file.
std::string heartbeat_text(const Heartbeat& h);
std::optional<Heartbeat> heartbeat_parse(const std::string& text);

// The one-line report of a stall: which op this rank waited on, on which communicator, at
// which step, micro-batch and phase, and for each member of that communicator that had not
// reached the op what it last said of itself (`peers`: world rank -> heartbeat, missing when
// none was found). A heartbeat older than `stale_s` means the rank stopped or vanished.
std::string stall_report(const FlightRecorder::Stall& stall, const std::string& comm_name,
                         const std::vector<int>& comm_ranks, int my_rank, const std::string& my_host,
                         const std::map<int, Heartbeat>& peers, double now_wall_s, double stale_s);

}  // namespace tessera
