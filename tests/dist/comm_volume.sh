#!/usr/bin/env bash
# The bytes each communicator reports per step (metrics.jsonl "comm_bytes", rank 0) equal the
# analytic ring volume of the collectives the layout needs, computed here independently from
# the model's shapes: all-reduce 2(n-1)/n of the buffer, reduce-scatter and all-gather
# (n-1)/n of the full buffer, a send its buffer.
set -euo pipefail
TESSERA=$(realpath "$1")
SRC=$(realpath "$2")
source "$SRC/tests/lib.sh"
run() {  # name np --set ...
  local name=$1 np=$2
  shift 2
  timeout 120 mpirun --oversubscribe -np "$np" "$TESSERA" train tiny.toml --set train.steps=2 --set log.dir="$name" "$@" >"$name.log" 2>&1 ||
    { tail -5 "$name.log"; echo "FAIL: $name did not run"; exit 1; }
}
run dp2 2 --set parallel.dp=2
run zero2 2 --set parallel.dp=2 --set parallel.zero=1
run tp2 2 --set parallel.tp=2
run pp2 2 --set parallel.pp=2
"$PY" - <<'PY'
import json, sys
import h5py

L, C, T, B, GLOBAL = 4, 32, 16, 2, 8
F = 4  # bytes per element (fp32)
N = B * T

def last_step(run):
    recs = [json.loads(l) for l in open(f"{run}/metrics.jsonl") if '"loss"' in l]
    return recs[-1]["comm_bytes"]

with h5py.File("dp2/model.h5", "r") as f:
    shapes = {k: f["model"][k].shape for k in f["model"].keys()}
def numel(s):
    n = 1
    for d in s:
        n *= d
    return n
pad = lambda n, m: (n + m - 1) // m * m
flat = sum(pad(numel(s), 128) for s in shapes.values())   # the registry's flat layout
Vp = shapes["wte"][0]
ring_ar = lambda n, nbytes: 2 * (n - 1) / n * nbytes
expect = {
    # data parallel: every gradient all-reduced once; the buckets tile the flat range up to
    # the end of its last parameter (ln_f.bias, C elements), not the padding after it
    "dp2": {"tp": 0, "pp": 0, "dp": ring_ar(2, (flat - (128 - C)) * F), "embedding": 0},
    # ZeRO-1: reduce-scatter of the gradients + all-gather of the parameters
    "zero2": {"tp": 0, "pp": 0, "dp": 2 * (1 / 2) * pad(flat, 256) * F, "embedding": 0},
    # tensor parallel, per micro-batch: the embedding, 2 per block forward, 2 per block
    # backward and the final LayerNorm's input gradient (N, C); the loss's max (N) and sums (N, 2)
    "tp2": {"tp": (GLOBAL // B) * (ring_ar(2, (4 * L + 2) * N * C * F) + ring_ar(2, 3 * N * F)),
            "pp": 0, "dp": 0, "embedding": 0},
    # pipeline stage 0: one activation (B, T, C) sent per micro-batch; the tied embedding's
    # gradient all-reduced with the last stage
    "pp2": {"tp": 0, "pp": (GLOBAL // B) * N * C * F, "dp": 0, "embedding": ring_ar(2, Vp * C * F)},
}
bad = 0
for run, exp in expect.items():
    got = last_step(run)
    for axis, v in exp.items():
        ok = abs(got[axis] - v) <= 1e-9 * max(v, 1)
        print(f"{'ok  ' if ok else 'FAIL'} {run} {axis}: reported {got[axis]:.0f} B, analytic {v:.0f} B")
        bad += not ok
sys.exit(1 if bad else 0)
PY
