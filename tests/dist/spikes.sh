#!/usr/bin/env bash
# Loss spikes (train.spike_zscore): a poisoned data window (failpoint poison-batch#n: every
# target of the samples that step n reads is byte 0, which the model has learnt never follows
# text) makes one step's loss explode. 2 ranks; the loss lives on one pipeline stage, so the
# verdict every rank acts on comes from the loss reduced over the world.
#  - on_spike = "skip" (dp 2, ZeRO-1): a poisoned last step leaves exactly the weights of the run
#    one step shorter; a poisoned middle step is logged, recorded and the run goes on; the clean
#    run never sees a spike (no false alarms at this z);
#  - on_spike = "rewind" (pp 2): the run goes back to its step-16 checkpoint and skips the batches
#    of steps 17-22; its losses and weights then equal, bit for bit, those of a run started from
#    scratch with train.skip_data = "16:22" (the window removed), and a rewound run stopped and
#    resumed after the rewind equals both (the skipped window and the detector's window travel
#    in the checkpoint); the model card lists the spike and the skip_data that reproduces it.
set -euo pipefail
TESSERA=$(realpath "$1")
SRC=$(realpath "$2")
source "$SRC/tests/lib.sh"
fail() { echo "FAIL: $*"; exit 1; }
run() {  # run NAME STEPS [--set ...]: 2 ranks
  local name=$1 steps=$2
  shift 2
  mpirun --oversubscribe -np 2 "$TESSERA" train tiny.toml --set train.steps="$steps" --set optim.lr=3e-3 \
    --set optim.schedule='"constant"' --set optim.warmup_steps=0 --set train.spike_zscore=6 \
    --set train.spike_window=8 --set log.dir="\"$name\"" "$@" >"$name.out" 2>&1
}
spikes() { grep -c 'is a spike' "$1.out" || true; }

# Skip.
DP=(--set parallel.zero=1)
run short 19 "${DP[@]}" || { cat short.out; fail "19-step run"; }
[ "$(spikes short)" -eq 0 ] || { cat short.out; fail "a spike in the clean run"; }
TESSERA_FAILPOINT='poison-batch#20' run poisoned_last 20 "${DP[@]}" || { cat poisoned_last.out; fail "skip run"; }
grep -q 'step 20: loss [0-9.]* is a spike (mean [0-9.]*, standard deviation [0-9.]* of the last 8; train.spike_zscore = 6): the update was skipped' poisoned_last.out ||
  { cat poisoned_last.out; fail "no spike line for step 20"; }
[ "$(spikes poisoned_last)" -eq 1 ] || { cat poisoned_last.out; fail "expected one spike"; }
grep '"step": 20,' poisoned_last/metrics.jsonl | grep -q '"skipped": true, "spike": true' || fail "metrics.jsonl does not mark step 20 a skipped spike"
same_weights short poisoned_last || fail "a skipped last step changed the weights"

TESSERA_FAILPOINT='poison-batch#18' run poisoned_mid 24 "${DP[@]}" || { cat poisoned_mid.out; fail "mid skip run"; }
[ "$(spikes poisoned_mid)" -eq 1 ] && grep -q 'step 18: loss .* is a spike' poisoned_mid.out || { cat poisoned_mid.out; fail "expected one spike, at step 18"; }
grep -q '"action":"skipped","event":"spike",.*"step":18,' poisoned_mid/launches.jsonl || fail "no spike record in launches.jsonl"
grep -q '^## Loss spikes' poisoned_mid/README.md && grep -q '^| 18 | .* | update skipped |' poisoned_mid/README.md ||
  { cat poisoned_mid/README.md; fail "the model card does not list the spike"; }
grep -q '| finished at step 24' poisoned_mid/README.md || { cat poisoned_mid/README.md; fail "the launch table lost its end record"; }

# Rewind.
PP=(--set parallel.pp=2 --set train.on_spike='"rewind"' --set checkpoint.every=8)
TESSERA_FAILPOINT='poison-batch#22' run rewound 28 "${PP[@]}" || { cat rewound.out; fail "rewind run"; }
grep -q 'step 22: loss [0-9.]* is a spike .*: rewound to step 16, the batches of steps 17-22 skipped (train.skip_data = "16:22")' rewound.out ||
  { cat rewound.out; fail "no rewind line"; }
grep -q 'checkpoint: resuming from rewound/checkpoints/step_00000016 ' rewound.out || { cat rewound.out; fail "not rewound to step 16"; }
[ "$(spikes rewound)" -eq 1 ] || { cat rewound.out; fail "expected one spike"; }
TESSERA_FAILPOINT='poison-batch#22' run removed 28 --set parallel.pp=2 --set train.skip_data='"16:22"' || { cat removed.out; fail "skip_data run"; }
[ "$(spikes removed)" -eq 0 ] || { cat removed.out; fail "the run with the window removed met the poisoned batch"; }
"$PY" "$SRC/tests/dist/compare.py" removed rewound 0 --per-tensor --expect-steps 28 ||
  fail "the rewound run differs from the run with the window removed"
grep -q "train.skip_data='\"16:22\"'" rewound/README.md && grep -q '^| 22 | .* | rewound to step 16, batches of steps 17-22 skipped |' rewound/README.md ||
  { cat rewound/README.md; fail "the model card does not give the rewind and its skip_data"; }

# Stopped after the rewind, then resumed.
TESSERA_FAILPOINT='poison-batch#22' run resumed 28 "${PP[@]}" --set train.stop_at=24 || { cat resumed.out; fail "stopped run"; }
TESSERA_FAILPOINT='poison-batch#22' run resumed 28 "${PP[@]}" --set checkpoint.resume='"auto"' || { cat resumed.out; fail "resumed run"; }
grep -q 'resuming from resumed/checkpoints/step_00000024 ' resumed.out || { cat resumed.out; fail "not resumed from step 24"; }
[ "$(spikes resumed)" -eq 0 ] || { cat resumed.out; fail "the resumed run met the poisoned batch again"; }
"$PY" "$SRC/tests/dist/compare.py" removed resumed 0 --per-tensor --expect-steps 28 ||
  fail "the rewound, stopped and resumed run differs"
# The checkpoint carries the skipped window and the detector's window (any HDF5 reader sees them),
# and the resumed run counts only the tokens it trained on.
"$PY" - resumed/checkpoints/step_00000024/index.h5 resumed/metrics.jsonl removed/metrics.jsonl <<'PYEOF' || fail "the checkpoint's spike state or the token count is wrong"
import json, sys, h5py
attrs = h5py.File(sys.argv[1], "r").attrs
text = lambda v: v.decode() if isinstance(v, bytes) else str(v)
assert text(attrs["data_skips"]) == "16:22", attrs["data_skips"]
assert len(text(attrs["loss_window"]).split(",")) == 8, attrs["loss_window"]
last = lambda f: [json.loads(l) for l in open(f) if '"loss"' in l][-1]
a, b = last(sys.argv[2]), last(sys.argv[3])
assert a["step"] == b["step"] == 28 and a["tokens"] == b["tokens"] == 28 * 8 * 16, (a["tokens"], b["tokens"])
PYEOF
echo "spikes: skip leaves the weights untouched; rewind equals the run with the window removed, also across a resume"
