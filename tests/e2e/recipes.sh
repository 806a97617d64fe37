#!/usr/bin/env bash
# Every published-run recipe in examples/ trains three steps on the CPU at reduced width and
# depth (everything else as the recipe says: family, components, init, optimizer, schedule), so
# a recipe never rots: its keys stay valid and its model builds and learns.
set -euo pipefail
TESSERA=$(realpath "$1")
SRC=$(realpath "$2")
source "$SRC/tests/lib.sh"
fail() { echo "FAIL: $*"; exit 1; }
n=0
for recipe in "$SRC"/examples/*.toml; do
  name=$(basename "$recipe" .toml)
  [ "$name" = tiny ] && continue  # scripts/demo's own, trained whole by e2e tests elsewhere
  kv=0
  grep -q '^n_kv_head' "$recipe" && kv=2
  "$TESSERA" train "$recipe" --set model.n_layer=2 --set model.d_model=64 --set model.n_head=4 \
    --set model.n_kv_head=$kv --set model.d_ff=128 --set model.seq_len=32 --set model.vocab_size=0 \
    --set train.steps=3 --set train.global_batch=4 --set train.micro_batch=2 --set train.device='"cpu"' \
    --set train.precision='"fp32"' --set train.eval_every=0 --set train.eval_batches=1 --set train.threads=1 \
    --set data.tokenizer='"byte"' --set data.train='"tr"' --set data.valid='"va"' \
    --set checkpoint.resume='"none"' --set checkpoint.async=false --set log.dir="\"runs/$name\"" \
    --set log.every=1 >"$name.out" 2>&1 || { cat "$name.out"; fail "$name: the reduced run failed"; }
  "$PY" - "runs/$name/metrics.jsonl" "$name" <<'PY' || { cat "$name.out"; fail "$name: no finite losses for 3 steps"; }
import json, math, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
assert [s["step"] for s in steps] == [1, 2, 3], steps
assert all(s["loss"] is not None and math.isfinite(s["loss"]) for s in steps), steps
print(sys.argv[2] + ": losses " + ", ".join("%.4f" % s["loss"] for s in steps))
PY
  grep -q "^model: $(sed -n 's/^family = "\(.*\)"/\1/p' "$recipe" | head -n 1): 2 layers" "$name.out" ||
    { cat "$name.out"; fail "$name: the run did not build the recipe's family"; }
  n=$((n + 1))
done
[ "$n" -ge 6 ] || fail "only $n recipes found"
echo "recipes: $n recipes trained 3 steps each at reduced size"
