"""Times torch.mm (MKL on x86 PyPI builds) at the GEMM shapes `bench_gemm_libraries --list`
prints, on the same threads, median of --reps; prints one row per shape and a summary line
  gemm_libraries: library=torch.mm flops_per_step=F ms_per_step=S gflops=G
Operands are laid out as tessera's (row-major, transposes as strided views)."""
import argparse
import statistics
import sys
import time

import torch

parser = argparse.ArgumentParser()
parser.add_argument("shapes", help="file written by bench_gemm_libraries --list")
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--reps", type=int, default=9)
args = parser.parse_args()
torch.set_num_threads(args.threads)

flops = seconds = 0.0
for line in open(args.shapes):
    name, M, N, K, ta, tb, beta, calls = line.strip().split("|")
    M, N, K, calls, beta = int(M), int(N), int(K), int(calls), float(beta)
    a = torch.randn(K, M).t() if ta == "1" else torch.randn(M, K)
    b = torch.randn(N, K).t() if tb == "1" else torch.randn(K, N)
    c = torch.zeros(M, N)

    def run():
        if beta != 0:
            c.addmm_(a, b, beta=beta)
        else:
            torch.mm(a, b, out=c)

    run()
    times = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    s = statistics.median(times)
    f = 2.0 * M * N * K
    flops += f * calls
    seconds += s * calls
    print(f"{name:16s} {M:6d} {N:6d} {K:6d} {calls:5d} {f / s / 1e9:15.1f}")
print(f"gemm_libraries: library=torch.mm flops_per_step={flops:.6g} ms_per_step={seconds * 1e3:.2f}"
      f" gflops={flops / seconds / 1e9:.1f}")
sys.stdout.flush()
