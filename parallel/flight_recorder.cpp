#include "parallel/flight_recorder.h"

#include <cstdio>
#include <sstream>

namespace tessera {
namespace {

std::string fixed(double v, int digits) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
}

std::string where(int64_t step, int micro_batch, const std::string& phase) {
  std::string s = "step " + std::to_string(step);
  if (micro_batch >= 0) s += ", micro-batch " + std::to_string(micro_batch);
  if (!phase.empty()) s += " (" + phase + ")";
  return s;
}

std::string rank_list(const std::vector<int>& ranks) {
  std::string s;
  for (size_t i = 0; i < ranks.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(ranks[i]);
  }
  return s;
}

}  // namespace

FlightRecorder::FlightRecorder(size_t capacity)
    : start_(std::chrono::steady_clock::now()), capacity_(capacity < 1 ? 1 : capacity) {
  ring_.reserve(capacity_);
}

double FlightRecorder::now_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

int FlightRecorder::add_comm(const std::string& name, const std::vector<int>& world_ranks) {
  std::lock_guard<std::mutex> lock(mutex_);
  comms_.push_back({name, world_ranks, 0});
  return static_cast<int>(comms_.size()) - 1;
}

std::vector<int> FlightRecorder::comm_ranks(int comm) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return comms_[comm].ranks;
}

void FlightRecorder::set_step(int64_t step) {
  std::lock_guard<std::mutex> lock(mutex_);
  step_ = step;
  micro_batch_ = -1;
  phase_.clear();
}

void FlightRecorder::set_phase(int micro_batch, const std::string& phase) {
  std::lock_guard<std::mutex> lock(mutex_);
  micro_batch_ = micro_batch;
  phase_ = phase;
}

int64_t FlightRecorder::issue(int comm, const std::string& what) {
  std::lock_guard<std::mutex> lock(mutex_);
  FlightOp op;
  op.seq = next_seq_++;
  op.comm = comm;
  op.comm_seq = comms_[comm].issued++;
  op.what = what;
  op.step = step_;
  op.micro_batch = micro_batch_;
  op.phase = phase_;
  op.issued_s = now_s();
  if (ring_.size() < capacity_) ring_.push_back(op);
  else ring_[op.seq % capacity_] = op;
  return op.seq;
}

FlightOp* FlightRecorder::find(int64_t seq) {
  if (seq < 0 || seq >= next_seq_ || next_seq_ - seq > static_cast<int64_t>(capacity_)) return nullptr;
  FlightOp& op = ring_[seq % capacity_];
  return op.seq == seq ? &op : nullptr;
}

void FlightRecorder::wait(int64_t seq) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (FlightOp* op = find(seq); op && op->wait_s < 0) op->wait_s = now_s();
}

void FlightRecorder::done(int64_t seq) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (FlightOp* op = find(seq)) op->done_s = now_s();
}

std::optional<FlightRecorder::Stall> FlightRecorder::current_wait() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::optional<Stall> longest;
  const double now = now_s();
  for (const FlightOp& op : ring_)
    if (op.wait_s >= 0 && op.done_s < 0 && (!longest || now - op.wait_s > longest->waited_s))
      longest = Stall{op, now - op.wait_s};
  return longest;
}

std::string FlightRecorder::describe(const FlightOp& op) const {
  return op.what + " on " + comms_[op.comm].name;
}

Heartbeat FlightRecorder::heartbeat(int rank, const std::string& host, long pid, double wall_s) const {
  Heartbeat h;
  h.rank = rank;
  h.host = host;
  h.pid = pid;
  h.wall_s = wall_s;
  if (const auto stall = current_wait()) h.waiting = stall->op.what + " on " + comm_name(stall->op.comm);
  std::lock_guard<std::mutex> lock(mutex_);
  h.step = step_;
  h.micro_batch = micro_batch_;
  h.phase = phase_;
  for (const Comm& c : comms_) h.issued[c.name] = c.issued;
  return h;
}

std::string FlightRecorder::dump() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::ostringstream out;
  const int64_t first = next_seq_ > static_cast<int64_t>(capacity_) ? next_seq_ - static_cast<int64_t>(capacity_) : 0;
  for (int64_t s = first; s < next_seq_; ++s) {
    const FlightOp& op = ring_[s % capacity_];
    out << "#" << op.seq << " " << describe(op) << " (op " << op.comm_seq << " of "
        << comms_[op.comm].name << ") at " << where(op.step, op.micro_batch, op.phase)
        << ": issued " << fixed(op.issued_s, 3) << " s";
    if (op.wait_s >= 0) out << ", waited from " << fixed(op.wait_s, 3) << " s";
    out << (op.done_s >= 0 ? ", done " + fixed(op.done_s, 3) + " s" : ", not finished") << "\n";
  }
  return out.str();
}

std::string heartbeat_text(const Heartbeat& h) {
  std::ostringstream out;
  out << "rank=" << h.rank << "\nhost=" << h.host << "\npid=" << h.pid << "\nwall=" << fixed(h.wall_s, 3)
      << "\nstep=" << h.step << "\nmicro_batch=" << h.micro_batch << "\nphase=" << h.phase
      << "\nwaiting=" << h.waiting << "\n";
  for (const auto& [name, n] : h.issued) out << "issued." << name << "=" << n << "\n";
  out << "end=1\n";  // a file cut short lacks it
  return out.str();
}

std::optional<Heartbeat> heartbeat_parse(const std::string& text) {
  Heartbeat h;
  bool complete = false;
  std::istringstream in(text);
  try {
    for (std::string line; std::getline(in, line);) {
      const size_t eq = line.find('=');
      if (eq == std::string::npos) return std::nullopt;
      const std::string key = line.substr(0, eq), value = line.substr(eq + 1);
      if (key == "rank") h.rank = std::stoi(value);
      else if (key == "host") h.host = value;
      else if (key == "pid") h.pid = std::stol(value);
      else if (key == "wall") h.wall_s = std::stod(value);
      else if (key == "step") h.step = std::stoll(value);
      else if (key == "micro_batch") h.micro_batch = std::stoi(value);
      else if (key == "phase") h.phase = value;
      else if (key == "waiting") h.waiting = value;
      else if (key.rfind("issued.", 0) == 0) h.issued[key.substr(7)] = std::stoll(value);
      else if (key == "end") complete = true;
    }
  } catch (const std::exception&) {  // a number that does not parse: a foreign file
    return std::nullopt;
  }
  if (!complete || h.rank < 0) return std::nullopt;
  return h;
}

std::string stall_report(const FlightRecorder::Stall& stall, const std::string& comm_name,
                         const std::vector<int>& comm_ranks, int my_rank, const std::string& my_host,
                         const std::map<int, Heartbeat>& peers, double now_wall_s, double stale_s) {
  const FlightOp& op = stall.op;
  std::string s = "collective timeout: rank " + std::to_string(my_rank) + " (" + my_host + ") waited " +
                  fixed(stall.waited_s, 1) + " s on " + op.what + " on " + comm_name + " (ranks " +
                  rank_list(comm_ranks) + ", its op " + std::to_string(op.comm_seq) + ") at " +
                  where(op.step, op.micro_batch, op.phase);
  std::string missing;
  for (int r : comm_ranks) {
    if (r == my_rank) continue;
    const auto it = peers.find(r);
    std::string about;
    if (it == peers.end()) {
      about = "rank " + std::to_string(r) + ": no heartbeat at all";
    } else {
      const Heartbeat& h = it->second;
      const double age = now_wall_s - h.wall_s;
      const auto n = h.issued.find(comm_name);
      const bool reached = n != h.issued.end() && n->second > op.comm_seq;
      const std::string who = "rank " + std::to_string(r) + " (" + h.host + ", pid " + std::to_string(h.pid) + ")";
      const std::string last = where(h.step, h.micro_batch, h.phase) +
                               (h.waiting.empty() ? "" : ", waiting on " + h.waiting);
      if (age > stale_s) about = who + ": no heartbeat for " + fixed(age, 1) + " s (stopped or gone), last at " + last;
      else if (!reached) about = who + ": alive but has not reached it, at " + last;
    }
    if (about.empty()) continue;
    if (!missing.empty()) missing += "; ";
    missing += about;
  }
  s += missing.empty() ? "; every member had reached it (the transfer itself stalled)" : "; not arrived: " + missing;
  return s;
}

}  // namespace tessera
