// bench_flight_recorder: what the hang watchdog adds to one communication op on the step's
// thread: the text the communicator records ("all-reduce 4.0 KB") and the recorder's issue,
// wait and done, each under its lock. Prints nanoseconds per op, median of 5 runs of 1M ops.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "parallel/flight_recorder.h"

int main() {
  tessera::FlightRecorder recorder;
  const int comm = recorder.add_comm("tp", {0, 1});
  recorder.set_step(1);
  recorder.set_phase(0, "backward");
  constexpr int kOps = 1000000;
  std::vector<double> ns;
  for (int run = 0; run < 5; ++run) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kOps; ++i) {
      char size[32];
      std::snprintf(size, sizeof size, "%.1f KB", 4.0 + (i & 7));
      const int64_t seq = recorder.issue(comm, std::string("all-reduce ") + size);
      recorder.wait(seq);
      recorder.done(seq);
    }
    ns.push_back(std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / kOps);
  }
  std::sort(ns.begin(), ns.end());
  std::printf("flight_recorder: ns_per_op=%.1f (median of 5 x %d ops; min %.1f, max %.1f)\n", ns[2], kOps, ns[0], ns[4]);
  return 0;
}
