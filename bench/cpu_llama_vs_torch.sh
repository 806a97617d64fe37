#!/usr/bin/env bash
# CPU training throughput of tessera against PyTorch on the same LLaMA-shaped model, same
# threads, same run: tessera, then PyTorch eager, then PyTorch with torch.compile, REPEATS times.
#
# usage: bench/cpu_llama_vs_torch.sh [BUILD_DIR]        (default: build)
#   needs BUILD_DIR/tessera (it builds nothing: cmake --build BUILD_DIR -j2 --target tessera),
#   the fortune files (/usr/share/games/fortunes) and a Python with torch 2.x (TORCH_PYTHON,
#   default .venv-bench-torch/bin/python: python3 -m venv .venv-bench-torch &&
#   .venv-bench-torch/bin/pip install torch numpy).
# environment: THREADS (2), WARMUP (3) and STEPS (15) timed steps, REPEATS (2) rounds of the
#   three runs, COMPILE=0 to skip the torch.compile run, PERF=1 for a perf listing of tessera's
#   hot spots after the rounds.
#
# The model: tessera's family = "llama" with 6 layers, d_model 384, 6 heads of 64, 2 key/value
# heads, SwiGLU d_ff 1024, RMSNorm, RoPE (theta 10000), no biases, untied LM head, context 256,
# micro-batch 8 (2048 tokens a step), byte vocabulary (257, padded to 384), fp32, AdamW,
# clipping at 1.0. tessera trains on the fortune corpus (scripts/build-fortune-corpus, byte
# tokenizer); PyTorch (bench/torch_llama_train.py) on random tokens of the same shape (the cost
# does not depend on them). The compiled PyTorch run compiles during its warm-up steps.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
python=${TORCH_PYTHON:-$root/.venv-bench-torch/bin/python}
threads=${THREADS:-2} warmup=${WARMUP:-3} steps=${STEPS:-15} repeats=${REPEATS:-2}
use_compile=${COMPILE:-1} use_perf=${PERF:-0}
layers=6 d_model=384 heads=6 kv_heads=2 d_ff=1024 seq_len=256 micro_batch=8

tessera=$build/tessera
if [[ ! -x $tessera ]]; then
  echo "error: $tessera not found; build first: cmake --build $build -j2 --target tessera" >&2
  exit 2
fi
if ! "$python" -c 'import torch' 2>/dev/null; then
  echo "error: $python has no torch (set TORCH_PYTHON)" >&2
  exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cpu=$(lscpu | sed -n 's/^Model name: *//p')

echo "== machine: $cpu, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== $("$python" -c 'import torch; print("torch", torch.__version__)'), tessera $("$tessera" version | head -1)"
echo "== corpus: the fortune files (scripts/build-fortune-corpus), byte tokenizer"
"$root/scripts/build-fortune-corpus" "$tmp/corpus" >/dev/null
"$tessera" prepare --tokenizer byte --input "$tmp"/corpus/train/*.txt --out "$tmp/shards"

cat >"$tmp/bench.toml" <<EOF
[model]
family = "llama"
n_layer = $layers
d_model = $d_model
n_head = $heads
n_kv_head = $kv_heads
d_ff = $d_ff
seq_len = $seq_len
[train]
steps = $((warmup + steps))
micro_batch = $micro_batch
global_batch = $micro_batch
threads = $threads
[optim]
lr = 3e-4
schedule = "constant"
grad_clip = 1.0
[data]
tokenizer = "byte"
train = "$tmp/shards"
EOF

# Reads a run's metrics.jsonl; prints "tokens/s ms/step" over the steps after the warm-up
# (total tokens / total step time).
cat >"$tmp/summarize_run.py" <<'EOF'
import json, sys
metrics, warmup, tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
timed = [json.loads(l) for l in open(metrics) if '"step_ms"' in l][warmup:]
ms = sum(r["step_ms"] for r in timed)
print(f"{tokens * len(timed) / (ms / 1000):.1f} {ms / len(timed):.1f}")
EOF

# run_tessera LABEL: one timed run; prints "tokens/s ms/step".
run_tessera() {
  echo "== tessera ($1): $((warmup + steps)) steps, the first $warmup excluded" >&2
  "$tessera" train "$tmp/bench.toml" --set log.dir="\"$tmp/run_$1\"" >&2
  "$python" "$tmp/summarize_run.py" "$tmp/run_$1/metrics.jsonl" "$warmup" \
    "$((micro_batch * seq_len))"
}

# run_torch LABEL [ARGS...]: one timed run; prints "tokens/s ms/step".
run_torch() {
  local label=$1
  shift
  echo "== PyTorch ($label${*:+: $*})" >&2
  "$python" "$root/bench/torch_llama_train.py" --layers $layers --d-model $d_model \
    --heads $heads --kv-heads $kv_heads --d-ff $d_ff --seq-len $seq_len \
    --micro-batch $micro_batch --threads "$threads" --warmup "$warmup" --steps "$steps" "$@" |
    tee "$tmp/torch_$label.log" >&2
  sed -n 's/^torch: .* mean \([0-9.]*\) ms\/step, \([0-9.]*\) tokens\/s$/\2 \1/p' \
    "$tmp/torch_$label.log"
}

results=()
for ((r = 1; r <= repeats; r++)); do
  read -r t_tps t_ms < <(run_tessera "t$r")
  read -r e_tps e_ms < <(run_torch "eager$r")
  c_tps=0 c_ms=0
  if [[ $use_compile == 1 ]]; then
    read -r c_tps c_ms < <(run_torch "compiled$r" --compile) || c_tps=0 c_ms=0
  fi
  results+=("$r $t_tps $t_ms $e_tps $e_ms $c_tps $c_ms")
done

if [[ $use_perf == 1 ]] && command -v perf >/dev/null; then
  echo "== perf: top symbols of a $((warmup + 5))-step tessera run, share of samples over all threads"
  perf record -q -F 499 -o "$tmp/perf.data" -- "$tessera" train "$tmp/bench.toml" \
    --set train.steps=$((warmup + 5)) --set log.dir="\"$tmp/perf_run\"" >/dev/null 2>&1 &&
    perf report -i "$tmp/perf.data" --no-children --sort dso,sym --stdio 2>/dev/null |
    grep -E '^ +[0-9.]+%' | head -25 || true
fi

echo
echo "== summary: $(date -u '+%Y-%m-%d %H:%M UTC'), $cpu, $threads threads, load average now $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%s\n' "${results[@]}" >"$tmp/results.txt"
"$python" - "$tmp/results.txt" <<'EOF'
import sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
print(f"{'round':>5s} {'tessera tok/s':>13s} {'ms/step':>8s} {'eager tok/s':>11s} {'ms/step':>8s}"
      f" {'ratio':>6s} {'compiled tok/s':>14s} {'ms/step':>8s} {'ratio':>6s}")
for r, t, tm, e, em, c, cm in rows:
    comp = f"{c:14.0f} {cm:8.0f} {t / c:5.2f}x" if c else f"{'-':>14s} {'-':>8s} {'-':>6s}"
    print(f"{int(r):5d} {t:13.0f} {tm:8.0f} {e:11.0f} {em:8.0f} {t / e:5.2f}x {comp}")
# The peer is the faster PyTorch configuration of each round.
lowest = min(t / max(e, c) for r, t, tm, e, em, c, cm in rows)
print(f"target tessera >= 1.3x the faster PyTorch run of every round:"
      f" {'met' if lowest >= 1.3 else 'NOT met'} (lowest ratio {lowest:.2f}x)")
EOF
