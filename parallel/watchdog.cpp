#include "parallel/watchdog.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace tessera {
namespace {

double wall_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Written under a temporary name and renamed, so a reader never sees half a file.
void write_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) return;  // a heartbeat lost costs nothing but its freshness
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
}

std::string heartbeat_path(const std::string& dir, int rank) {
  return dir + "/rank_" + std::to_string(rank) + ".heartbeat";
}

}  // namespace

CommWatchdog::CommWatchdog(FlightRecorder& recorder, WatchdogConfig cfg, std::function<void()> abort_comms)
    : recorder_(recorder), cfg_(std::move(cfg)), abort_comms_(std::move(abort_comms)) {
  std::error_code ec;
  std::filesystem::create_directories(cfg_.dir, ec);
  write_heartbeat();
  thread_ = std::thread([this] { loop(); });
}

CommWatchdog::~CommWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  std::error_code ec;
  std::filesystem::remove(heartbeat_path(cfg_.dir, cfg_.rank), ec);
}

double CommWatchdog::interval_s() const { return std::min(2.0, cfg_.timeout_s / 4); }

void CommWatchdog::write_heartbeat() const {
  write_atomic(heartbeat_path(cfg_.dir, cfg_.rank),
               heartbeat_text(recorder_.heartbeat(cfg_.rank, cfg_.host, static_cast<long>(getpid()), wall_now())));
}

void CommWatchdog::loop() {
  const auto interval = std::chrono::duration<double>(interval_s());
  // A tick that comes late means this process itself did not run (SIGSTOP, a starved VM):
  // the time is counted so that the report does not blame the peers for it.
  double last_tick = recorder_.now_s(), paused_s = 0;
  int64_t stalled_seq = -1;
  std::unique_lock<std::mutex> lock(mutex_);
  while (!cv_.wait_for(lock, interval, [&] { return stop_; })) {
    const double now = recorder_.now_s(), late = now - last_tick - interval.count();
    last_tick = now;
    write_heartbeat();
    const auto stall = recorder_.current_wait();
    if (!stall) continue;
    if (stall->op.seq != stalled_seq) stalled_seq = stall->op.seq, paused_s = 0;
    if (late > interval.count()) paused_s += late;
    if (stall->waited_s > cfg_.timeout_s) fire(*stall, paused_s);
  }
}

void CommWatchdog::fire(const FlightRecorder::Stall& stall, double paused_s) const {
  // The peers' heartbeats; a rank that stopped or vanished has a stale one (or none).
  const std::vector<int> ranks = recorder_.comm_ranks(stall.op.comm);
  std::map<int, Heartbeat> peers;
  for (int r : ranks)
    if (r != cfg_.rank)
      if (auto h = heartbeat_parse(read_file(heartbeat_path(cfg_.dir, r)))) peers[r] = *h;
  const std::string dump_path = cfg_.dir + "/rank_" + std::to_string(cfg_.rank) + ".flight";
  write_atomic(dump_path, recorder_.dump());
  const std::string line = stall_report(stall, recorder_.comm_name(stall.op.comm), ranks, cfg_.rank,
                                        cfg_.host, peers, wall_now(), 3 * interval_s() + 1);
  char paused[128] = "";
  if (paused_s > 0)
    std::snprintf(paused, sizeof paused, "; this rank itself was not running for %.1f s of the wait (stopped or starved)", paused_s);
  std::fprintf(stderr, "tessera: error: %s%s (train.collective_timeout_s = %g; last operations: %s)\n",
               line.c_str(), paused, cfg_.timeout_s, dump_path.c_str());
  std::fflush(stderr);
  if (abort_comms_) abort_comms_();
  std::_Exit(kWatchdogExit);
}

}  // namespace tessera
