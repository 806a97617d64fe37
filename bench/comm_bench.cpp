// bench_comm: all-reduce, reduce-scatter and all-gather through tessera's Communicator over
// every rank, f32, at sizes 1 KiB, 4 KiB, ... up to --max-mb. Figures follow nccl-tests:
// `size` is the full buffer (the all-reduce buffer, the reduce-scatter input, the all-gather
// output), algbw = size / time, busbw = algbw * 2(n-1)/n (all-reduce) or algbw * (n-1)/n
// (reduce-scatter, all-gather); time is the slowest rank's mean. Each op is checked once per
// size against closed-form sums of rank-dependent inputs (exit 1 on a mismatch).
//
// usage: mpirun -np N bench_comm [--device cpu|cuda] [--max-mb 256] [--iters K]
//   --iters K: at least K timed iterations, more until one size and op takes ~0.2 s.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "parallel/mpi_comm.h"
#include "parallel/nccl_comm.h"
#include "runtime/device.h"
#include "runtime/error.h"

namespace tessera {
namespace {

struct Options {
  DeviceKind device = DeviceKind::cpu;
  int64_t max_mb = 256;
  int iters = 10;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) throw UserError("missing value after " + a);
    const std::string v = argv[++i];
    if (a == "--device" && (v == "cpu" || v == "cuda"))
      o.device = v == "cpu" ? DeviceKind::cpu : DeviceKind::cuda;
    else if (a == "--max-mb")
      o.max_mb = std::atoll(v.c_str());
    else if (a == "--iters")
      o.iters = std::atoi(v.c_str());
    else
      throw UserError("usage: bench_comm [--device cpu|cuda] [--max-mb 256] [--iters K]");
  }
  if (o.max_mb < 1 || o.iters < 1) throw UserError("--max-mb and --iters must be positive");
  return o;
}

// A device buffer owned by the benchmark; views of its prefix are the operands.
struct Buffer {
  Device& dev;
  void* data;
  Buffer(Device& d, size_t bytes) : dev(d), data(d.allocate(bytes)) {}
  ~Buffer() { dev.release(data); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Tensor view(int64_t n) const { return Tensor{data, DType::f32, dev.kind(), Shape{n}}; }
};

double max_over_ranks(double x) {
  TS_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
  return x;
}

bool all_ranks(bool ok) {
  int v = ok ? 1 : 0;
  TS_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
  return v == 1;
}

// Seconds per call, the slowest rank's mean; the CUDA stream is drained before the clock stops.
double time_op(Device& dev, const std::function<void()>& op, int min_iters) {
  using Clock = std::chrono::steady_clock;
  auto run = [&](int64_t iters) {
    TS_CHECK_MPI(MPI_Barrier(MPI_COMM_WORLD));
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < iters; ++i) op();
    dev.synchronize();
    return max_over_ranks(std::chrono::duration<double>(Clock::now() - t0).count()) /
           static_cast<double>(iters);
  };
  run(2);  // warm-up
  // Every rank must run the same count: it comes from the slowest rank's estimate.
  const double once = run(1);
  const auto for_time = static_cast<int64_t>(std::ceil(0.2 / std::max(once, 1e-7)));
  const int64_t iters = std::max<int64_t>(min_iters, std::min<int64_t>(1000000, for_time));
  return run(iters);
}

// Inputs are small integers times rank factors, so every sum is exact in f32.
float value(int rank, int64_t i) {
  return static_cast<float>((rank + 1) * (1 + i % 5));
}

int run_bench(MpiWorld& world, const Options& opt) {
  const int n = world.size(), rank = world.rank();
  const int local_rank = rank % std::max(1, world.local_size());
  auto dev = Device::create(opt.device, opt.device == DeviceKind::cuda ? local_rank : 0);
  std::vector<int> everyone(n);
  std::iota(everyone.begin(), everyone.end(), 0);
  MPI_Comm mpi = world.split(everyone);
  std::unique_ptr<Communicator> comm;
  if (opt.device == DeviceKind::cuda) {
    comm = nccl_comm_create("world", mpi, *dev);
    MPI_Comm_free(&mpi);  // NCCL only bootstraps over it
  } else {
    comm = std::make_unique<MpiComm>("world", mpi, world.thread_multiple());  // owns mpi
  }

  const int64_t max_bytes = opt.max_mb << 20;
  Buffer big(*dev, static_cast<size_t>(max_bytes)), small(*dev, static_cast<size_t>(max_bytes / n));
  const double sum_factor = n * (n + 1) / 2.0;  // sum over ranks of (rank + 1)

  if (rank == 0) {
    std::printf("bench_comm: %d ranks, device %s, f32, %s\n", n, dev->name(),
                opt.device == DeviceKind::cuda ? "NcclComm" : "MpiComm");
    std::printf("%12s  %-14s %12s %12s %12s\n", "size(B)", "op", "time(us)", "algbw(GB/s)",
                "busbw(GB/s)");
  }
  for (int64_t bytes = 1024; bytes <= max_bytes; bytes *= 4) {
    const int64_t elems = bytes / 4 / n * n, part = elems / n;  // (n * part) f32
    if (part == 0) continue;
    const Tensor full = big.view(elems), shard = small.view(part);
    std::vector<float> host(static_cast<size_t>(elems));
    for (int op = 0; op < 3; ++op) {
      const int64_t in_elems = op == 2 ? part : elems, out_elems = op == 1 ? part : elems;
      // Input element i is global element g0 + i (all-gather inputs are shards).
      const int64_t g0 = op == 2 ? rank * part : 0;
      std::vector<float> in(static_cast<size_t>(in_elems));
      for (int64_t i = 0; i < in_elems; ++i) in[i] = value(rank, g0 + i);
      const char* name = op == 0 ? "all_reduce" : op == 1 ? "reduce_scatter" : "all_gather";
      std::function<void()> call;
      Tensor out;
      if (op == 0) {
        out = full;
        dev->copy_from_host(full, in.data());
        call = [&] { comm->all_reduce(full); };
      } else if (op == 1) {
        out = shard;
        dev->copy_from_host(full, in.data());
        call = [&] { comm->reduce_scatter(shard, full); };
      } else {
        out = full;
        dev->copy_from_host(shard, in.data());
        call = [&] { comm->all_gather(full, shard); };
      }
      call();
      dev->copy_to_host(host.data(), out);
      // Output element i is global element g: a sum over ranks, or rank g / part's input.
      int64_t bad = -1;
      float want = 0;
      for (int64_t i = 0; i < out_elems && bad < 0; ++i) {
        const int64_t g = op == 1 ? rank * part + i : i;
        want = op == 2 ? static_cast<float>((g / part + 1) * (1 + g % 5))
                       : static_cast<float>(sum_factor * (1 + g % 5));
        if (host[i] != want) bad = i;
      }
      if (bad >= 0)
        std::fprintf(stderr, "bench_comm: rank %d: %s of %lld B: element %lld is %g, expected %g\n",
                     rank, name, static_cast<long long>(bytes), static_cast<long long>(bad),
                     host[bad], want);
      if (!all_ranks(bad < 0)) return 1;

      const double s = time_op(*dev, call, opt.iters);
      const double size = static_cast<double>(elems) * 4, algbw = size / s / 1e9;
      const double bus = op == 0 ? 2.0 * (n - 1) / n : (n - 1.0) / n;
      if (rank == 0)
        std::printf("%12lld  %-14s %12.1f %12.3f %12.3f\n", static_cast<long long>(size), name,
                    s * 1e6, algbw, algbw * bus);
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace
}  // namespace tessera

int main(int argc, char** argv) {
  tessera::MpiWorld world(&argc, &argv);
  try {
    const tessera::Options opt = tessera::parse(argc, argv);
    return tessera::run_bench(world, opt);
  } catch (const tessera::UserError& e) {
    if (world.rank() == 0) std::fprintf(stderr, "bench_comm: %s\n", e.what());
    return 2;
  }
}
