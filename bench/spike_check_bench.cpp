// bench_spike_check: what loss-spike detection (train.spike_zscore) adds to a step: the verdict
// and window update of optim/loss_spike.h at windows of 100 and 1000 losses, and the one 8-byte
// all-reduce that brings the loss to every rank before the update (MPI_Allreduce of one double
// over the world, as the trainer's world sum issues it). Run under mpirun; prints microseconds
// per step for each, the slowest rank's median of 5 runs.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "optim/loss_spike.h"

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double slowest(double x) {
  MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return x;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, world = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  using Clock = std::chrono::steady_clock;
  constexpr int kSteps = 20000;
  double sink = 0;
  for (int window : {100, 1000}) {
    std::vector<double> us;
    for (int run = 0; run < 5; ++run) {
      tessera::LossSpikeDetector d(6.0, window);
      const auto t0 = Clock::now();
      for (int i = 0; i < kSteps; ++i) {
        const double loss = 3.0 + 0.001 * (i % 97);
        const auto v = d.check(loss);
        sink += v.mean;
        if (!v.spike) d.accept(loss);
      }
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / kSteps);
    }
    const double t = slowest(median(us));
    if (rank == 0) std::printf("spike_check: window %d: %.3f us per step (verdict + window update)\n", window, t);
  }
  std::vector<double> us;
  for (int run = 0; run < 5; ++run) {
    MPI_Barrier(MPI_COMM_WORLD);
    const auto t0 = Clock::now();
    for (int i = 0; i < kSteps; ++i) {
      double loss = rank + i;
      MPI_Allreduce(MPI_IN_PLACE, &loss, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
      sink += loss;
    }
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / kSteps);
  }
  const double t = slowest(median(us));
  if (rank == 0) std::printf("spike_check: 8-byte all-reduce over %d ranks: %.3f us per step (sink %g)\n", world, t, sink > 0 ? 1.0 : 0.0);
  MPI_Finalize();
  return 0;
}
