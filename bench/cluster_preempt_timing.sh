#!/usr/bin/env bash
# From a preemption signal to the requeued job's first new step, on the local Slurm cluster
# (scripts/cluster, 2 nodes x 2 ranks, tp 2 x dp 2, CPU): the time split into the stop (the
# step in flight finished and the checkpoint saved), Slurm's requeue wait, the new launch's
# start-up (srun, MPI, setup), the checkpoint load and the first step. Polls every 0.1 s.
# usage: bench/cluster_preempt_timing.sh [BUILD_DIR]   (root; ROUNDS, default 2)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
rounds=${ROUNDS:-2}
export CLUSTER_NAME=tsbench CLUSTER_SUBNET=10.79.0 TESSERA=$build/tessera
tmp=$(mktemp -d)
trap '"$root/scripts/cluster" down >/dev/null 2>&1; rm -rf "$tmp"' EXIT
"$root/scripts/cluster" up 2 >/dev/null
eval "$("$root/scripts/cluster" env)"
cd "$tmp"
"$root/scripts/build-fortune-corpus" corpus >/dev/null
"$TESSERA" prepare --tokenizer byte --input corpus/train/en.txt --out tr >/dev/null
cat > run.toml <<'TOML'
[model]
family = "llama"
n_layer = 4
d_model = 256
n_head = 4
n_kv_head = 2
seq_len = 128
[train]
steps = 100000
micro_batch = 2
global_batch = 8
threads = 1
[parallel]
tp = 2
[data]
train = "tr"
[log]
every = 1
TOML
now() { date +%s.%N; }
count() { local n; n=$(grep -c "$1" "$2" 2>/dev/null); echo "${n:-0}"; }
until_true() { while ! "$@"; do sleep 0.1; done; }
at_least() { [ "$(count "$1" "$2")" -ge "$3" ]; }  # at_least PATTERN FILE N: re-counted on every call
echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, tessera $("$TESSERA" version); model: $(grep -c . run.toml) config lines, llama 4 x 256"
for ((r = 1; r <= rounds; r++)); do
  dir=runs/r$r
  job=$(RUN_DIR=$dir sbatch --parsable -N2 --ntasks-per-node=2 --gpus-per-node=0 --cpus-per-task=1 --time=120 \
    -o "job$r.out" "$root/examples/slurm/train.sbatch" run.toml)
  until_true at_least '"loss"' "$dir/metrics.jsonl" 20
  t0=$(now); scancel --signal=USR1 "$job"
  until at_least '"event":"end"' "$dir/launches.jsonl" 1; do
    sleep 0.1
    (($(date +%s) - ${t0%.*} < 120)) || { cat "job$r.out"; echo "round $r: no stop within 120 s of the signal"; exit 1; }
  done
  t1=$(now)
  until_true at_least 'restart 1' "job$r.out" 1; t2=$(now)
  until_true at_least '"event":"start"' "$dir/launches.jsonl" 2; t3=$(now)
  steps=$(count '"loss"' "$dir/metrics.jsonl")
  until_true at_least '"loss"' "$dir/metrics.jsonl" $((steps + 1)); t4=$(now)
  scancel "$job"
  job_gone() { [ -z "$(squeue -h -j "$job" 2>/dev/null)" ]; }
  until_true job_gone
  save=$(sed -n 's/^checkpoint: saved .* (\([0-9.]*\) s)$/\1/p' "job$r.out" | tail -n 1)
  load=$(sed -n 's/.*loaded in \([0-9.]*\) s).*/\1/p' "job$r.out" | tail -n 1)
  mib=$(sed -n 's/.* \([0-9.]*\) MiB read in.*/\1/p' "job$r.out" | tail -n 1)
  python3 - "$t0" "$t1" "$t2" "$t3" "$t4" "$save" "$load" "$mib" "$r" <<'PY'
import sys
t0, t1, t2, t3, t4, save, load, mib = map(float, sys.argv[1:9])
print(f"round {sys.argv[9]}: signal -> stopped {t1 - t0:.2f} s (checkpoint save {save:.2f} s, {mib:.1f} MiB) | "
      f"requeue wait {t2 - t1:.2f} s | new batch script -> launch record {t3 - t2:.2f} s | "
      f"-> first new step {t4 - t3:.2f} s (checkpoint load {load:.2f} s) | total {t4 - t0:.2f} s")
PY
done
