#!/usr/bin/env bash
# Non-finite gradients on one rank (failpoint nan-grad: a NaN in rank 1's gradients), 2 ranks,
# dp 2 with ZeRO-1. Every rank sees the same gradient norm and so decides alike:
#  - train.on_nonfinite = "skip": the step is not applied, so a run whose last step is poisoned
#    ends with exactly the weights of the same run one step shorter; a poisoned middle step is
#    logged as skipped and the run goes on to finite losses;
#  - "skip" with every step from the 3rd poisoned stops after train.max_skipped in a row with one
#    line (exit 2);
#  - "stop" (the default) ends the run at the poisoned step with one line, nothing applied.
set -euo pipefail
TESSERA=$(realpath "$1")
SRC=$(realpath "$2")
source "$SRC/tests/lib.sh"
fail() { echo "FAIL: $*"; exit 1; }
run() {  # run NAME STEPS [--set ...]: 2 ranks
  local name=$1 steps=$2
  shift 2
  mpirun --oversubscribe -np 2 "$TESSERA" train tiny.toml --set train.steps="$steps" --set parallel.zero=1 \
    --set optim.schedule='"constant"' --set optim.warmup_steps=0 --set log.dir="\"$name\"" "$@" >"$name.out" 2>&1
}
run short 5 || { cat short.out; fail "5-step run"; }
TESSERA_FAILPOINT='nan-grad@1#6' run poisoned_last 6 --set train.on_nonfinite='"skip"' || { cat poisoned_last.out; fail "skip run"; }
grep -q 'step 6: gradient norm nan: the update was skipped (1 in a row' poisoned_last.out || { cat poisoned_last.out; fail "no skip line"; }
grep '"step": 6,' poisoned_last/metrics.jsonl | grep -q '"skipped": true' || fail "metrics.jsonl does not mark step 6 skipped"
same_weights short poisoned_last || fail "a skipped last step changed the weights"

TESSERA_FAILPOINT='nan-grad@1#3' run poisoned_mid 8 --set train.on_nonfinite='"skip"' || { cat poisoned_mid.out; fail "mid skip run"; }
[ "$(grep -c 'the update was skipped' poisoned_mid.out)" -eq 1 ] || fail "expected one skipped step"
"$PY" -c 'import json,math,sys; r=[json.loads(l) for l in open(sys.argv[1]) if "\"loss\"" in l]; assert len(r)==8 and all(x["loss"] is not None and math.isfinite(x["loss"]) for x in r if x["step"]!=3), r' poisoned_mid/metrics.jsonl ||
  fail "the run did not go on with finite losses after the skipped step"

set +e
TESSERA_FAILPOINT='nan-grad@1#3+' run every 20 --set train.on_nonfinite='"skip"' --set train.max_skipped=3
rc=$?
TESSERA_FAILPOINT='nan-grad@1#3' run stop 8
rc_stop=$?
set -e
[ "$rc" -eq 2 ] && [ "$(grep -c '^tessera: error:' every.out)" -eq 1 ] &&
  grep -q "tessera: error: 3 steps in a row up to step 5 had a non-finite gradient norm and were skipped (train.max_skipped = 3)" every.out ||
  { cat every.out; fail "max_skipped did not stop the run with one line (exit $rc)"; }
[ "$rc_stop" -eq 2 ] && [ "$(grep -c '^tessera: error:' stop.out)" -eq 1 ] &&
  grep -q "tessera: error: the gradient norm became nan at step 3; nothing was applied" stop.out ||
  { cat stop.out; fail "on_nonfinite = stop did not end the run with one line (exit $rc_stop)"; }
[ ! -e stop/model.h5 ] || fail "a stopped run wrote final weights"
echo "nonfinite: skip leaves the weights untouched, max_skipped and stop end the run with one line"
