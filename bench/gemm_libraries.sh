#!/usr/bin/env bash
# The fp32 GEMMs of one training step through every CPU GEMM library within reach, in one run:
# OpenBLAS as tessera calls it, OpenBLAS's own pool, oneDNN (dnnl_sgemm and the matmul
# primitive) and torch.mm (MKL, the library PyTorch's CPU training runs on). The step's GEMM
# time at each library's isolated rate is the floor under that library's training step.
#
# usage: bench/gemm_libraries.sh [BUILD_DIR] [-- ARGS for bench_gemm_libraries]
#   default: the LLaMA shape of bench/cpu_llama_vs_torch.sh (6 x 384, 6 heads / 2 kv, SwiGLU
#   1024, context 256, micro-batch 8, byte vocabulary); needs BUILD_DIR/bench/bench_gemm_libraries
#   (built where libdnnl-dev is installed) and TORCH_PYTHON (default .venv-bench-torch/bin/python).
# environment: THREADS (2), REPEATS (2) rounds of the two programs.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
shift || true
[[ ${1:-} == -- ]] && shift
python=${TORCH_PYTHON:-$root/.venv-bench-torch/bin/python}
threads=${THREADS:-2} repeats=${REPEATS:-2}
probe=$build/bench/bench_gemm_libraries
[[ -x $probe ]] || { echo "error: $probe not built (apt-get install libdnnl-dev; cmake --build $build --target bench_gemm_libraries)" >&2; exit 2; }
"$python" -c 'import torch' 2>/dev/null || { echo "error: $python has no torch (set TORCH_PYTHON)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== $("$python" -c 'import torch; print("torch", torch.__version__, "mkl", torch.backends.mkl.is_available())')"
"$probe" --list --threads "$threads" "$@" >"$tmp/shapes"
for ((r = 1; r <= repeats; r++)); do
  echo "== round $r"
  "$probe" --threads "$threads" "$@" | tee -a "$tmp/summary"
  "$python" "$root/bench/torch_gemm.py" "$tmp/shapes" --threads "$threads" | tee -a "$tmp/summary"
done
echo "== summary (ms of GEMMs per step, each library's isolated rate)"
grep '^gemm_libraries:' "$tmp/summary" | sed 's/^gemm_libraries: //'
