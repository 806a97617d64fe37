#!/usr/bin/env bash
# Checkpoints under mpirun (CPU backend).
#
# usage: checkpoint.sh TESSERA SRC_DIR layouts|bitwise|crash|errors [FAMILY]
#   layouts: stop a tp 2 x pp 2 x dp 2 (ZeRO-1, sequence parallel, interleaved) run at step 10
#            with a checkpoint, continue it under the same layout (the reference) and under
#            every layout of world <= 4; losses and final weights match to 1e-5
#   bitwise: 20 steps straight equal 10 + resume + 10 bit for bit (losses and weights), as one
#            process and as 4 ranks (tp 2 x dp 2, ZeRO-1), dropout on, async saves every 3 steps
#   crash:   a rank SIGKILLed at every point of the save protocol and at random times never
#            leaves a checkpoint that resume = "auto" would pick but cannot load
#   errors:  corrupted, truncated and missing shards, an unwritable checkpoint.dir and a failed
#            save are one-line errors (exit 2); "auto" falls back to the previous checkpoint, or
#            to step 0 exactly as a fresh run when the only checkpoint is corrupt;
#            SIGTERM and SIGINT stop a run with a checkpoint and exit 0
#   FAMILY:  gpt2 (default), llama (8 heads, 4 key/value heads), neox, bloom
set -euo pipefail
TESSERA=$(realpath "$1")
SRC=$(realpath "$2")
MODE=${3:-layouts}
FAMILY=${4:-gpt2}
source "$SRC/tests/lib.sh"
HEADS="n_head = 4"
[ "$FAMILY" = llama ] && HEADS=$'n_head = 8\nn_kv_head = 4'
cat > ck.toml <<TOML
[model]
family = "$FAMILY"
n_layer = 8
d_model = 32
$HEADS
seq_len = 16
dropout = 0.1
[train]
steps = 20
micro_batch = 2
global_batch = 16
threads = 1
[optim]
lr = 3e-3
warmup_steps = 2
grad_clip = 1.0
[data]
train = "tr"
[log]
every = 1
TOML
failed=0
fail() { echo "FAIL $*"; failed=1; }
# run NAME NP [--set ...]: trains ck.toml on NP ranks into log dir NAME (appending to NAME.log)
run() {
  local name=$1 np=$2; shift 2
  if [ "$np" -gt 1 ]; then
    timeout 300 mpirun --oversubscribe -np "$np" "$TESSERA" train ck.toml --set log.dir="$name" "$@" >>"$name.log" 2>&1
  else
    timeout 300 "$TESSERA" train ck.toml --set log.dir="$name" "$@" >>"$name.log" 2>&1
  fi
}
layout() {  # tp pp dp schedule virtual_stages sequence_parallel zero -> --set arguments
  echo "--set parallel.tp=$1 --set parallel.pp=$2 --set parallel.dp=$3 --set parallel.schedule=$4" \
       "--set parallel.virtual_stages=$5 --set parallel.sequence_parallel=$6 --set parallel.zero=$7"
}
one_line() {  # FILE: exactly one "tessera: error:" line (mpirun adds its own banner around it)
  local n; n=$(grep -c "^tessera: error: " "$1" || true)
  [ "$n" = 1 ]
}

case "$MODE" in
layouts)
  big="2 2 2 interleaved 2 true 1"
  # shellcheck disable=SC2046
  run saved 8 $(layout $big) --set train.stop_at=10 || fail "saving run"
  [ -f saved/checkpoints/step_00000010/index.h5 ] || fail "no checkpoint at step 10"
  cp -r saved same
  # shellcheck disable=SC2046
  run same 8 $(layout $big) --set checkpoint.resume='"auto"' || fail "same-layout continuation"
  for l in "1 1 1 1f1b 1 false 0" "2 1 1 1f1b 1 false 0" "2 1 1 1f1b 1 true 0" \
           "1 2 1 1f1b 1 false 0" "1 2 1 interleaved 2 false 0" "1 1 2 1f1b 1 false 0" \
           "1 1 2 1f1b 1 false 1" "4 1 1 1f1b 1 true 0" "1 4 1 gpipe 1 false 0" \
           "1 1 4 1f1b 1 false 1" "2 2 1 1f1b 1 false 0" "2 1 2 1f1b 1 true 1" \
           "1 2 2 interleaved 2 false 1"; do
    read -r tp pp dp sched v sp zero <<<"$l"
    name="tp${tp}_pp${pp}_dp${dp}_${sched}${v}_sp${sp}_zero${zero}"
    # shellcheck disable=SC2046
    if ! run "$name" $((tp * pp * dp)) $(layout $l) --set checkpoint.resume="\"$PWD/saved/checkpoints/step_00000010\""; then
      fail "$name: the run failed:"; tail -3 "$name.log"; continue
    fi
    grep -q "checkpoint: resuming from .*step_00000010 (step 10" "$name.log" || fail "$name did not say it resumed"
    "$PY" "$SRC/tests/dist/compare.py" same "$name" 1e-5 --from-step 11 --expect-steps 10 || failed=1
  done
  ;;
bitwise)
  for spec in "1 1 1 1 1f1b 1 false 0" "4 2 1 2 1f1b 1 false 1"; do
    read -r np tp pp dp sched v sp zero <<<"$spec"
    # shellcheck disable=SC2046
    set -- $(layout $tp $pp $dp $sched $v $sp $zero) --set checkpoint.every=3 --set checkpoint.async=true
    run "straight$np" "$np" "$@" || fail "straight run ($np ranks)"
    run "resumed$np" "$np" "$@" --set train.stop_at=10 || fail "first half ($np ranks)"
    grep -q "stopped by train.stop_at after step 10" "resumed$np.log" || fail "no stop line ($np ranks)"
    run "resumed$np" "$np" "$@" --set checkpoint.resume='"auto"' || fail "second half ($np ranks)"
    grep -q "resuming from .*step_00000010" "resumed$np.log" || fail "did not resume from step 10 ($np ranks)"
    "$PY" "$SRC/tests/dist/compare.py" "straight$np" "resumed$np" 0 --per-tensor --expect-steps 20 || failed=1
    "$PY" - "straight$np" "resumed$np" <<'PY' || failed=1
import sys, h5py, numpy as np
a, b = sys.argv[1], sys.argv[2]
with h5py.File(f"{a}/checkpoints/step_00000020/index.h5") as fa, h5py.File(f"{b}/checkpoints/step_00000020/index.h5") as fb:
    names = []
    fa.visit(lambda n: names.append(n) if isinstance(fa[n], h5py.Dataset) and n.startswith("optim/") else None)
    bad = [n for n in names if not np.array_equal(fa[n][...], fb[n][...])]
    assert names, "no optimizer state in the index"
    print(f"{b}: {len(names)} optimizer tensors at step 20, {len(bad)} differ from the straight run")
    sys.exit(1 if bad else 0)
PY
  done
  ;;
crash)
  # Every named point of the protocol, on an owning rank and on rank 0, at the third save.
  points="shard-begin@1 shard-written@1 shard-synced@1 shard-written@0 index-begin index-written renamed latest-written"
  i=0
  for p in $points; do
    for async in false true; do
      i=$((i + 1)); name="fp$i"
      TESSERA_FAILPOINT="$p#3" run "$name" 2 $(layout 1 1 2 1f1b 1 false 1) \
        --set checkpoint.every=2 --set checkpoint.async=$async && fail "$name ($p): the killed run exited 0"
      # Continue as one process: whatever "auto" picks must load, and nothing may be skipped.
      if ! run "$name" 1 --set checkpoint.resume='"auto"' --set train.steps=12; then
        fail "$name ($p, async $async): resume failed:"; tail -3 "$name.log"; continue
      fi
      if grep -q "checkpoint: skipping" "$name.log"; then fail "$name ($p): a broken checkpoint was left:"; grep "skipping" "$name.log"; fi
      picked=$(grep -o "resuming from [^ ]*" "$name.log" | tail -1 || true)
      echo "$p (async $async): ${picked:-started fresh}"
    done
  done
  # Random moments: SIGKILL one rank of a run that saves every step.
  for k in 1 2 3 4 5 6 7 8; do
    name="kill$k"
    ( run "$name" 2 $(layout 1 1 2 1f1b 1 false 1) --set checkpoint.every=1 --set checkpoint.async=$([ $((k % 2)) = 0 ] && echo true || echo false) --set train.steps=400 ) &
    bg=$!
    sleep "$(awk -v k=$k 'BEGIN { srand(k); printf "%.2f", 0.6 + rand() * 1.5 }')"
    victim=$(pgrep -f "tessera train ck.toml --set log.dir=$name" | tail -1 || true)
    [ -n "$victim" ] && kill -9 $victim 2>/dev/null || true
    wait $bg 2>/dev/null || true
    if ! run "$name" 1 --set checkpoint.resume='"auto"' --set train.steps=405; then
      fail "$name: resume failed:"; tail -3 "$name.log"; continue
    fi
    if grep -q "checkpoint: skipping" "$name.log"; then fail "$name: a broken checkpoint was left:"; grep "skipping" "$name.log"; fi
    echo "kill $k: $(grep -o "resuming from [^ ]*" "$name.log" | tail -1 || echo started fresh)"
  done
  ;;
errors)
  run base 2 $(layout 1 1 2 1f1b 1 false 1) --set checkpoint.every=5 --set checkpoint.keep=3 || fail "base run"
  ck=base/checkpoints
  ls "$ck"
  check_error() {  # NAME EXPECTED-TEXT ARGS...: exit 2, one line containing the text
    local name=$1 text=$2; shift 2
    set +e; "$@" >"$name.out" 2>"$name.err"; local rc=$?; set -e
    [ $rc = 2 ] || fail "$name: exit $rc, expected 2"
    one_line "$name.err" || { fail "$name: not one error line:"; cat "$name.err"; }
    grep -q -- "$text" "$name.err" || { fail "$name: error does not say '$text':"; cat "$name.err"; }
  }
  check_error othermodel "tensor .*(the \[model\] config differs" \
    "$TESSERA" train ck.toml --set log.dir=x5 --set model.d_model=64 --set checkpoint.resume="\"$PWD/base/checkpoints/step_00000020\"" --set checkpoint.dir='"unused"'
  flip() {  # FILE FRACTION: flips the bits of one byte at FRACTION of the file
    "$PY" -c "
import os, sys
p = sys.argv[1]; at = int(os.path.getsize(p) * float(sys.argv[2]))
with open(p, 'r+b') as f:
    f.seek(at); b = f.read(1); f.seek(at); f.write(bytes([b[0] ^ 0x5a]))" "$1" "$2"
  }
  # A flipped byte in the newest checkpoint: "auto" falls back to the previous one, a path fails.
  flip "$ck/step_00000020/shard_00001.h5" 0.5
  run base 1 --set checkpoint.resume='"auto"' --set train.steps=22 || fail "auto after corruption"
  grep -q "checkpoint: skipping .*step_00000020: .*shard_00001.h5: shard fails its checksum" base.log || fail "no skip line naming the corrupted shard"
  grep -q "resuming from .*step_00000015" base.log || fail "did not fall back to step 15"
  check_error corrupt "shard_00001.h5: shard fails its checksum" \
    "$TESSERA" train ck.toml --set log.dir=x1 --set checkpoint.resume="\"$ck/step_00000020\""
  # Only a corrupted checkpoint (a byte of the weights, which load before the checksums are
  # compared): "auto" starts from step 0, bit for bit as a run that never saw it.
  # shellcheck disable=SC2046
  set -- $(layout 1 1 2 1f1b 1 false 1) --set train.steps=8 --set checkpoint.dir='"lone_ck"'
  run lone 2 "$@" --set train.steps=5 --set checkpoint.every=5 || fail "run saving one checkpoint"
  flip lone_ck/step_00000005/shard_00001.h5 0.2
  run lone_auto 2 "$@" --set checkpoint.resume='"auto"' || fail "auto with only a corrupted checkpoint"
  grep -q "skipping .*step_00000005: .*shard_00001.h5: shard fails its checksum" lone_auto.log || fail "no skip line for the only checkpoint"
  grep -q "no valid checkpoint in .*; starting from step 0" lone_auto.log || fail "no start-from-step-0 line"
  run lone_fresh 2 "$@" || fail "fresh run"
  "$PY" "$SRC/tests/dist/compare.py" lone_fresh lone_auto 0 --per-tensor --expect-steps 8 || fail "auto after a corrupted-only checkpoint differs from a fresh run"
  truncate -s -100 "$ck/step_00000015/shard_00000.h5"
  check_error truncated "shard_00000.h5: shard is .*(truncated)" \
    mpirun --oversubscribe -np 2 "$TESSERA" train ck.toml --set log.dir=x2 --set checkpoint.resume="\"$ck/step_00000015\""
  rm "$ck/step_00000010/shard_00001.h5"
  check_error missing "shard_00001.h5: shard file is missing" \
    "$TESSERA" train ck.toml --set log.dir=x3 --set checkpoint.resume="\"$ck/step_00000010\""
  check_error nodir "no such checkpoint directory" \
    "$TESSERA" train ck.toml --set log.dir=x4 --set checkpoint.resume='"nowhere/step_00000005"'
  touch blocker
  check_error unwritable "cannot create checkpoint directory" \
    mpirun --oversubscribe -np 2 "$TESSERA" train ck.toml --set log.dir=x6 --set checkpoint.every=5 --set checkpoint.dir='"blocker/ck"'
  # A save that fails part-way (rank 1's second shard): the run stops, the first checkpoint stays.
  export TESSERA_FAILPOINT="shard-written@1#2:error"
  check_error savefail "checkpoint step_00000010 was not saved: failpoint shard-written: injected I/O error; training stopped (last complete checkpoint: .*step_00000005)" \
    mpirun --oversubscribe -np 2 "$TESSERA" train ck.toml --set log.dir=x7 --set checkpoint.every=5 --set checkpoint.async=true --set parallel.zero=1
  unset TESSERA_FAILPOINT
  run x7 1 --set checkpoint.resume='"auto"' --set train.steps=6 || fail "resume after the failed save"
  grep -q "resuming from .*step_00000005" x7.log || fail "the last complete checkpoint did not load after a failed save"
  # SIGTERM and SIGINT to one process: finish the step, save, exit 0 naming the checkpoint.
  for sig in TERM INT; do
    "$TESSERA" train ck.toml --set log.dir="sig$sig" --set train.steps=1000000 >"sig$sig.log" 2>&1 &
    pid=$!
    until grep -q '"step": 3,' "sig$sig/metrics.jsonl" 2>/dev/null; do sleep 0.1; done
    kill -$sig $pid
    set +e; wait $pid; rc=$?; set -e
    [ $rc = 0 ] || fail "SIG$sig: exit $rc, expected 0"
    line=$(grep -o "stopped by a signal after step [0-9]*; checkpoint: [^ ]*" "sig$sig.log" || true)
    [ -n "$line" ] && [ -f "${line##* }/index.h5" ] || { fail "SIG$sig: no stop line or no checkpoint"; tail -2 "sig$sig.log"; }
    echo "SIG$sig: $line"
  done
  ;;
*) echo "unknown mode $MODE"; exit 2 ;;
esac
[ $failed = 0 ] && echo "checkpoint $MODE: ok"
exit $failed
