#!/usr/bin/env bash
# CPU training throughput of tessera against PyTorch on the same GPT-2 shape, plus the OpenBLAS
# sgemm rate at that model's GEMM shapes and the share of tessera's step spent in GEMMs.
#
# usage: bench/cpu_train_vs_torch.sh [BUILD_DIR]        (default: build)
#   needs BUILD_DIR/tessera, BUILD_DIR/bench/bench_gemm_probe and libbench_sgemm_timer.so (it
#   builds nothing: cmake --build build -j2 --target tessera bench_gemm_probe bench_sgemm_timer),
#   the fortune files (/usr/share/games/fortunes) and a Python with torch (TORCH_PYTHON, default
#   /usr/bin/python3).
# environment: THREADS (2), WARMUP (3) and STEPS (15) timed steps, PERF=0 to skip the perf
#   listing of tessera's hot spots.
#
# The model: 6 layers, d_model 384, 6 heads, context 256, micro-batch 8 (2048 tokens a step),
# byte vocabulary (257, padded to 384), fp32, AdamW, clipping at 1.0. tessera trains on the
# fortune corpus; PyTorch on random tokens of the same shape (the cost does not depend on them).
#
# Both programs run OpenMP loops (libgomp) beside OpenBLAS's own pthread pool, so each is timed
# twice: as installed, and with OMP_WAIT_POLICY=passive OPENBLAS_THREAD_TIMEOUT=4 (idle threads
# of both pools sleep instead of spinning on the cores the other pool needs).
#
# GEMMs: bench_gemm_probe times each GEMM shape of a step in isolation (the sgemm rate); the
# timed tessera runs carry libbench_sgemm_timer.so (LD_PRELOAD), which clocks every cblas_sgemm
# call, so the GEMMs' wall time inside the timed steps, their share of the step and their rate
# against the isolated one are measured, not estimated.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
python=${TORCH_PYTHON:-/usr/bin/python3}
threads=${THREADS:-2} warmup=${WARMUP:-3} steps=${STEPS:-15} use_perf=${PERF:-1}
layers=6 d_model=384 heads=6 seq_len=256 micro_batch=8
quiet_pools=(OMP_WAIT_POLICY=passive OPENBLAS_THREAD_TIMEOUT=4)

tessera=$build/tessera probe=$build/bench/bench_gemm_probe
timer=$build/bench/libbench_sgemm_timer.so
for exe in "$tessera" "$probe" "$timer"; do
  if [[ ! -e $exe ]]; then
    echo "error: $exe not found; build first:" \
      "cmake --build $build -j2 --target tessera bench_gemm_probe bench_sgemm_timer" >&2
    exit 2
  fi
done
if ! "$python" -c 'import torch' 2>/dev/null; then
  echo "error: $python has no torch (set TORCH_PYTHON)" >&2
  exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cpu=$(lscpu | sed -n 's/^Model name: *//p')

echo "== machine: $cpu, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== corpus: the fortune files, byte tokenizer"
mapfile -t inputs < <(find /usr/share/games/fortunes -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' | sort)
"$tessera" prepare --tokenizer byte --input "${inputs[@]}" --out "$tmp/shards"

cat >"$tmp/bench.toml" <<EOF
[model]
n_layer = $layers
d_model = $d_model
n_head = $heads
seq_len = $seq_len
[train]
steps = $((warmup + steps))
micro_batch = $micro_batch
threads = $threads
[optim]
lr = 3e-4
schedule = "constant"
grad_clip = 1.0
[data]
tokenizer = "byte"
train = "$tmp/shards"
EOF

# Reads a run's metrics.jsonl and sgemm log; prints "tokens/s ms/step timed_steps gemm_ms
# gemm_gflop" over the timed steps (total tokens / total time; GEMM wall time and GFLOP per
# step from the timed steps' cblas_sgemm calls, 12 per layer and 3 for the LM head). tessera
# splits each GEMM's rows across its threads, each calling a serial sgemm: the timer then sees
# `threads` consecutive calls per GEMM, whose wall time is the slowest of them.
cat >"$tmp/summarize_run.py" <<'EOF'
import json, sys
metrics, sgemm = sys.argv[1], sys.argv[2]
warmup, tokens, calls_per_step, threads = map(int, sys.argv[3:])
rows = [json.loads(l) for l in open(metrics) if '"step_ms"' in l]
timed = rows[warmup:]
n = len(timed)
ms = sum(r["step_ms"] for r in timed)
lines = [l.split() for l in open(sgemm)]
# Calls per GEMM: the whole GEMM in one call (pool inside BLAS), or one per thread (split).
per = threads if len(lines) >= (warmup + n) * calls_per_step * threads else 1
calls = lines[-n * calls_per_step * per:]
gemm_s = sum(max(float(c[3]) for c in calls[i:i + per]) for i in range(0, len(calls), per))
gflop = sum(2.0 * int(c[0]) * int(c[1]) * int(c[2]) for c in calls) / 1e9
print(f"{tokens * n / (ms / 1000):.1f} {ms / n:.1f} {n} {gemm_s * 1000 / n:.1f} {gflop / n:.3f}")
EOF

# run_tessera LABEL [VAR=VALUE...]: one timed run; prints summarize_run.py's line.
run_tessera() {
  local label=$1
  shift
  echo "== tessera ($label${*:+: $*}): $((warmup + steps)) steps, the first $warmup excluded" >&2
  env "$@" TESSERA_SGEMM_LOG="$tmp/sgemm_$label.txt" LD_PRELOAD="$timer" \
    "$tessera" train "$tmp/bench.toml" --set log.dir="$tmp/run_$label" >&2
  "$python" "$tmp/summarize_run.py" "$tmp/run_$label/metrics.jsonl" "$tmp/sgemm_$label.txt" \
    "$warmup" "$((micro_batch * seq_len))" "$((12 * layers + 3))" "$threads"
}

# run_torch LABEL [VAR=VALUE...]: one timed run; prints tokens/s.
run_torch() {
  local label=$1
  shift
  echo "== PyTorch ($label${*:+: $*})" >&2
  env "$@" "$python" "$root/bench/torch_gpt_train.py" --layers $layers --d-model $d_model \
    --heads $heads --seq-len $seq_len --micro-batch $micro_batch --threads "$threads" \
    --warmup "$warmup" --steps "$steps" | tee "$tmp/torch_$label.log" >&2
  sed -n 's/^torch: .* \([0-9.]*\) tokens\/s$/\1/p' "$tmp/torch_$label.log"
}

# perf_hot_spots LABEL [VAR=VALUE...]: the top symbols of a short run, where perf works.
perf_hot_spots() {
  local label=$1
  shift
  [[ $use_perf == 1 ]] && command -v perf >/dev/null || return 0
  env "$@" perf record -q -F 499 -o "$tmp/perf_$label.data" -- "$tessera" train "$tmp/bench.toml" \
    --set train.steps=$((warmup + 5)) --set log.dir="$tmp/perf_$label" >/dev/null 2>&1 || return 0
  echo "== perf ($label${*:+: $*}): top symbols of a $((warmup + 5))-step tessera run, share of" \
    "samples over all threads"
  perf report -i "$tmp/perf_$label.data" --sort dso,sym --stdio 2>/dev/null | grep '%' | head -15 ||
    true
}

read -r tessera_tps tessera_ms tessera_n gemm_ms gemm_gflop < <(run_tessera default)
torch_tps=$(run_torch default)
read -r tessera_q_tps tessera_q_ms _ gemm_q_ms _ < <(run_tessera quiet "${quiet_pools[@]}")
torch_q_tps=$(run_torch quiet "${quiet_pools[@]}")

echo "== OpenBLAS sgemm at the model's GEMM shapes, in isolation"
"$probe" --layers $layers --d-model $d_model --seq-len $seq_len --micro-batch $micro_batch \
  --vocab 257 --threads "$threads" | tee "$tmp/probe.log"
read -r probe_flops probe_s probe_gflops < <(sed -n \
  's/^gemm_probe: flops_per_step=\([^ ]*\) seconds_per_step=\([^ ]*\) gflops=\(.*\)$/\1 \2 \3/p' \
  "$tmp/probe.log")

perf_hot_spots default
perf_hot_spots quiet "${quiet_pools[@]}"

echo
echo "== summary: $(date -u +%Y-%m-%d), $cpu, $threads threads, load average now $(cut -d' ' -f1-3 /proc/loadavg)"
"$python" - "$tessera_tps" "$tessera_ms" "$tessera_n" "$torch_tps" "$tessera_q_tps" \
  "$tessera_q_ms" "$torch_q_tps" "$probe_flops" "$probe_s" "$probe_gflops" "$gemm_ms" \
  "$gemm_q_ms" "$gemm_gflop" <<'EOF'
import sys
(tps, ms, n, torch_tps, q_tps, q_ms, torch_q_tps, probe_flops, probe_s, probe_gflops, gemm_ms,
 gemm_q_ms, gemm_gflop) = map(float, sys.argv[1:])
print(f"{'':24s} {'tessera tok/s':>13s} {'ms/step':>8s} {'PyTorch tok/s':>13s} {'ratio':>6s}"
      f" {'GEMM ms/step':>12s} {'GEMM share':>10s} {'GEMM GFLOP/s':>12s} {'of sgemm':>8s}")
for label, t, m, p, g in (("as installed", tps, ms, torch_tps, gemm_ms),
                          ("idle pools sleep (env)", q_tps, q_ms, torch_q_tps, gemm_q_ms)):
    rate = gemm_gflop / (g / 1000)
    print(f"{label:24s} {t:13.0f} {m:8.0f} {p:13.0f} {t / p:5.2f}x {g:12.0f} {100 * g / m:9.0f}%"
          f" {rate:12.1f} {100 * rate / probe_gflops:7.0f}%")
print(f"sgemm at the model's GEMM shapes (bench_gemm_probe, in isolation): {probe_gflops:.1f} GFLOP/s;"
      f" one step's {probe_flops / 1e9:.1f} GFLOP of GEMMs take {probe_s * 1000:.0f} ms at that rate."
      f" GEMM columns: measured over the {int(n)} timed steps ({gemm_gflop:.1f} GFLOP each).")
eff = gemm_gflop / (gemm_ms / 1000) / probe_gflops
print(f"targets, as installed: tessera >= 1.3x PyTorch: {'met' if tps / torch_tps >= 1.3 else 'NOT met'};"
      f" GEMMs >= 80% of the sgemm rate: {'met' if eff >= 0.8 else 'NOT met'}")
EOF
