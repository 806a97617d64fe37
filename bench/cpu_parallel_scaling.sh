#!/usr/bin/env bash
# CPU backend, fixed global batch, 1 / 2 / 4 ranks in several layouts: tokens/s and the
# measured step split (compute, exposed communication, pipeline bubble; mean over ranks) of
# the default tiny model (examples/tiny.toml, micro-batch 4, global batch 16). Ranks share
# the machine's cores (train.threads = 0 gives each rank cores / ranks).
#
# usage: bench/cpu_parallel_scaling.sh [build/tessera] [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
TESSERA=$(realpath "${1:-build/tessera}")
STEPS=${2:-30}
PY=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
scripts/build-fortune-corpus "$WORK/corpus" >/dev/null
"$TESSERA" prepare --tokenizer byte --input "$WORK"/corpus/train/*.txt --out "$WORK/tr" >/dev/null
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf "%-22s %5s %10s %9s %9s %9s %9s\n" layout ranks "tok/s" "step ms" compute "exp.comm" bubble
# "tp pp dp bucket_mb": dp 2 twice, with 0.25 MiB buckets (reductions start during backward)
# and with one bucket of the whole 3.4 MB of gradients (all of it after backward).
for l in "1 1 1 25" "1 1 2 0.25" "1 1 2 1000" "2 1 1 25" "1 2 1 25" "1 1 4 0.25" "2 1 2 0.25" \
         "1 2 2 0.25" "2 2 1 25" "4 1 1 25"; do
  read -r tp pp dp bucket <<<"$l"
  np=$((tp * pp * dp))
  dir="$WORK/run_$tp$pp${dp}_$bucket"
  launch=()
  [ "$np" -gt 1 ] && launch=(mpirun --oversubscribe -np "$np")
  "${launch[@]}" "$TESSERA" train examples/tiny.toml --set data.sources=[] --set data.tokenizer=byte --set data.train="$WORK/tr" --set data.valid= \
    --set log.dir="$dir" --set log.every=1 --set train.steps="$STEPS" --set train.micro_batch=4 \
    --set train.global_batch=16 --set train.eval_every=0 --set parallel.tp="$tp" \
    --set parallel.pp="$pp" --set parallel.dp="$dp" --set parallel.bucket_mb="$bucket" >"$dir.log" 2>&1 || { tail -3 "$dir.log"; exit 1; }
  "$PY" - "$dir/metrics.jsonl" "tp$tp pp$pp dp$dp b$bucket" "$np" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
recs = recs[len(recs) // 3:]  # skip warm-up steps
mean = lambda k: sum(r[k] for r in recs) / len(recs)
print(f"{sys.argv[2]:<22} {sys.argv[3]:>5} {mean('tokens_per_s'):>10.0f} {mean('step_ms'):>9.1f} "
      f"{mean('compute_ms'):>9.1f} {mean('exposed_comm_ms'):>9.1f} {mean('bubble_ms'):>9.1f}")
PY
done
