#!/usr/bin/env bash
# The cost on the step time of the hang watchdog and of loss-spike detection: the same 2-rank CPU
# training (tp 2, one rank per core, a GPT-2 of 4 layers x 128, context 64; hundreds of
# collectives a step) with both off (train.collective_timeout_s = 0: no flight recorder, no
# heartbeat thread; train.spike_zscore = 0), the watchdog on (300 s), and the watchdog and spike
# detection on (spike_zscore = 6, spike_window = 20: the loss summed over the world before the
# update), alternating, ROUNDS rounds; prints each run's median step time and the ratios.
# usage: bench/watchdog_overhead.sh [BUILD_DIR]    environment: ROUNDS (3), STEPS (60)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
rounds=${ROUNDS:-3} steps=${STEPS:-60}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$root/scripts/build-fortune-corpus" "$tmp/corpus" >/dev/null
"$build/tessera" prepare --tokenizer byte --input "$tmp"/corpus/train/en.txt --out "$tmp/tr" >/dev/null
cat >"$tmp/run.toml" <<TOML
[model]
n_layer = 4
d_model = 128
n_head = 4
seq_len = 64
[train]
steps = $steps
micro_batch = 4
global_batch = 16
threads = 1
[parallel]
tp = 2
[data]
train = "$tmp/tr"
[log]
every = 1
TOML
median_ms() {  # median step_ms of a run after 10 warm-up steps
  /usr/bin/python3 -c 'import json,statistics,sys; v=[json.loads(l)["step_ms"] for l in open(sys.argv[1]) if "\"step_ms\"" in l][10:]; print(f"{statistics.median(v):.2f}")' "$1"
}
echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), tessera $("$build/tessera" version)"
for ((r = 1; r <= rounds; r++)); do
  for mode in off watchdog spike; do
    timeout=300 z=0
    [ $mode = off ] && timeout=0
    [ $mode = spike ] && z=6
    mpirun --oversubscribe -np 2 "$build/tessera" train "$tmp/run.toml" --set train.collective_timeout_s=$timeout \
      --set train.spike_zscore=$z --set train.spike_window=20 --set log.dir="\"$tmp/run_${r}_$mode\"" >"$tmp/out" 2>&1 ||
      { cat "$tmp/out"; exit 1; }
  done
  off=$(median_ms "$tmp/run_${r}_off/metrics.jsonl") on=$(median_ms "$tmp/run_${r}_watchdog/metrics.jsonl")
  spike=$(median_ms "$tmp/run_${r}_spike/metrics.jsonl")
  echo "round $r: off $off ms/step, watchdog $on ms/step, watchdog + spike detection $spike ms/step;" \
    "watchdog/off $(/usr/bin/python3 -c "print(f'{$on/$off:.3f}')"), (watchdog + spike)/watchdog $(/usr/bin/python3 -c "print(f'{$spike/$on:.3f}')")"
done
# The part on the step's own thread, per communication op, in isolation.
[[ -x $build/bench/bench_flight_recorder ]] && "$build/bench/bench_flight_recorder"
# Spike detection's own work per step, in isolation: the verdict and the 8-byte all-reduce.
[[ -x $build/bench/bench_spike_check ]] && mpirun --oversubscribe -np 2 "$build/bench/bench_spike_check"
