#!/usr/bin/env bash
# Every parallel layout computes the same training run as one process: trains a tiny model of
# one family for 20 steps (dropout on) as one process and under `mpirun --oversubscribe` in each
# layout, then compares per-step losses and the assembled final weights (tests/dist/compare.py).
#
# usage: equivalence.sh TESSERA SRC_DIR [covering|full|pipeline] [fp32|fp64] [FAMILY] [SECTION.KEY=VALUE...]
#   covering: a subset where every option appears at least once (ctest runs it)
#   full:     every tp, pp, dp in {1, 2, 4} with world <= 8, 1f1b and interleaved,
#             ZeRO-1 on and off, sequence parallelism on and off
#   pipeline: pp 2 alone and with tp 2 (the untied-embedding regression)
#   FAMILY:   gpt2 (default), llama (grouped-query, 8 heads / 4 kv heads), neox, bloom (12
#             heads: ALiBi slopes for a head count that is not a power of two)
#   SECTION.KEY=VALUE: overrides (--set) for every run, e.g. model.tie_embeddings=false
# fp32 must agree to 1e-5 relative; fp64 to 1e-11 (per tensor), which tells a real bug from
# float32 rounding.
set -euo pipefail
TESSERA=$(realpath "$1")
SRC=$(realpath "$2")
SET=${3:-covering}
PRECISION=${4:-fp32}
FAMILY=${5:-gpt2}
SETS=()
for o in "${@:6}"; do SETS+=(--set "$o"); done
TOL=1e-5
PER_TENSOR=
if [ "$PRECISION" = fp64 ]; then TOL=1e-11; PER_TENSOR=--per-tensor; fi
source "$SRC/tests/lib.sh"
case "$FAMILY" in
  gpt2) HEADS="n_head = 4" ;;
  llama) HEADS=$'n_head = 8\nn_kv_head = 4' ;;
  neox) HEADS="n_head = 4" ;;
  bloom) HEADS=$'n_head = 12' ;;
  *) echo "unknown family $FAMILY"; exit 2 ;;
esac
cat > tiny.toml <<TOML
[model]
family = "$FAMILY"
n_layer = 8
d_model = $([ "$FAMILY" = bloom ] && echo 48 || echo 32)
$HEADS
seq_len = 16
dropout = 0.1
[train]
steps = 20
micro_batch = 2
global_batch = 16
eval_batches = 4
threads = 1
precision = "$PRECISION"
[optim]
lr = 3e-3
warmup_steps = 2
grad_clip = 1.0
[data]
train = "tr"
valid = "va"
[log]
every = 1
TOML

"$TESSERA" train tiny.toml "${SETS[@]}" --set log.dir=ref >/dev/null

# "tp pp dp schedule virtual_stages sequence_parallel zero"
layouts=()
if [ "$SET" = full ]; then
  for tp in 1 2 4; do for pp in 1 2 4; do for dp in 1 2 4; do
    [ $((tp * pp * dp)) -le 8 ] && [ $((tp * pp * dp)) -gt 1 ] || continue
    scheds="1f1b:1"
    if [ "$pp" -gt 1 ] && [ $(((16 / 2 / dp) % pp)) -eq 0 ]; then scheds="$scheds interleaved:2"; fi
    zeros="0"; [ "$dp" -gt 1 ] && zeros="0 1"
    sps="false"; [ "$tp" -gt 1 ] && sps="false true"
    for s in $scheds; do for z in $zeros; do for sp in $sps; do
      layouts+=("$tp $pp $dp ${s%:*} ${s#*:} $sp $z")
    done; done; done
  done; done; done
  layouts+=("1 2 1 gpipe 1 false 0")
elif [ "$SET" = pipeline ]; then
  layouts=(
    "1 2 1 1f1b 1 false 0"
    "2 2 1 interleaved 2 true 0"
  )
else
  layouts=(
    "2 1 1 1f1b 1 false 0"
    "2 1 1 1f1b 1 true 0"
    "1 2 1 1f1b 1 false 0"
    "1 2 1 interleaved 2 false 0"
    "1 1 2 1f1b 1 false 0"
    "1 1 2 1f1b 1 false 1"
    "4 1 1 1f1b 1 true 0"
    "2 2 2 interleaved 2 true 1"
  )
fi

failed=0
for l in "${layouts[@]}"; do
  read -r tp pp dp sched v sp zero <<<"$l"
  name="tp${tp}_pp${pp}_dp${dp}_${sched}${v}_sp${sp}_zero${zero}"
  world=$((tp * pp * dp))
  if ! timeout 300 mpirun --oversubscribe -np "$world" "$TESSERA" train tiny.toml \
      --set log.dir="$name" --set parallel.tp="$tp" --set parallel.pp="$pp" \
      --set parallel.dp="$dp" --set parallel.schedule="$sched" \
      --set parallel.virtual_stages="$v" --set parallel.sequence_parallel="$sp" \
      --set parallel.zero="$zero" --set parallel.bucket_mb=0.01 "${SETS[@]}" >"$name.log" 2>&1; then
    echo "FAIL $name: the run failed:"; tail -5 "$name.log"; failed=1; continue
  fi
  "$PY" "$SRC/tests/dist/compare.py" ref "$name" "$TOL" $PER_TENSOR --expect-steps 20 || failed=1
done
exit $failed
