// CommWatchdog: a thread beside the step that publishes this rank's heartbeat (a small file in
// a directory every rank can read: the run directory) and ends the job when the host has
// waited on one communication operation longer than the timeout. It then prints one line
// naming the step, micro-batch, operation, communicator and the peers that had not reached it
// (from their heartbeats: stopped or vanished ranks have stale ones), writes the flight
// recorder's ring next to the heartbeats, calls `abort_comms` (NCCL: ncclCommAbort, so nothing
// waits on a dead peer) and exits the process with kWatchdogExit. The launcher (mpirun, srun
// --kill-on-bad-exit) then ends the other ranks, if their own watchdogs have not.
#pragma once
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "parallel/flight_recorder.h"

namespace tessera {

constexpr int kWatchdogExit = 3;

struct WatchdogConfig {
  double timeout_s = 300;  // > 0
  std::string dir;         // heartbeats and dumps: rank_<r>.heartbeat, rank_<r>.flight
  int rank = 0;
  std::string host;
};

class CommWatchdog {
 public:
  CommWatchdog(FlightRecorder& recorder, WatchdogConfig cfg, std::function<void()> abort_comms);
  ~CommWatchdog();  // stops the thread; removes this rank's heartbeat
  CommWatchdog(const CommWatchdog&) = delete;
  CommWatchdog& operator=(const CommWatchdog&) = delete;

  // Seconds between heartbeats (and checks): a quarter of the timeout, at most 2 s.
  double interval_s() const;

 private:
  void loop();
  void write_heartbeat() const;
  [[noreturn]] void fire(const FlightRecorder::Stall& stall, double paused_s) const;

  FlightRecorder& recorder_;
  WatchdogConfig cfg_;
  std::function<void()> abort_comms_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace tessera
