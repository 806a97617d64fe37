#!/usr/bin/env bash
# End to end, every model family as a user runs it: train a tiny LLaMA, Pythia (neox) and
# BLOOM on byte shards, require the held-out loss to fall, evaluate and generate past the
# context length (the key/value caches refill), and refuse component combinations that make no
# sense with one line and exit code 2.
set -euo pipefail
TESSERA=$1
SRC=$2
source "$SRC/tests/scratch.sh"  # scratch dir (cwd), corpus/, expect_exit2
"$TESSERA" prepare --tokenizer byte --input corpus/train/en.txt --out tr >/dev/null
"$TESSERA" prepare --tokenizer byte --input corpus/valid/en.txt --out va >/dev/null
cat > run.toml <<'TOML'
[model]
n_layer = 2
d_model = 64
n_head = 4
seq_len = 32
[train]
steps = 60
micro_batch = 8
global_batch = 16
eval_every = 60
eval_batches = 8
threads = 2
[optim]
lr = 3e-3
warmup_steps = 5
[data]
train = "tr"
valid = "va"
[log]
every = 10
TOML
for family in llama neox bloom; do
  extra=()
  [ "$family" = llama ] && extra=(--set model.n_kv_head=2)
  "$TESSERA" train run.toml --set model.family="\"$family\"" --set log.dir="\"$family\"" "${extra[@]}" >"$family.log" 2>&1 ||
    { echo "FAIL: $family training"; tail -5 "$family.log"; exit 1; }
  grep -q "model: $family: " "$family.log" || { echo "FAIL: $family: no model line"; head -5 "$family.log"; exit 1; }
  python3 - "$family" <<'PY'
import json, sys
family = sys.argv[1]
rows = [json.loads(l) for l in open(f"{family}/metrics.jsonl")]
train = [r["loss"] for r in rows if "loss" in r]
val = [r["val_loss"] for r in rows if "val_loss" in r]
assert train[-1] < train[0] - 0.5, f"{family}: training loss {train[0]:.3f} -> {train[-1]:.3f} did not fall"
assert val and val[-1] < 3.5, f"{family}: validation loss {val}"
print(f"{family}: loss {train[0]:.3f} -> {train[-1]:.3f}, validation {val[-1]:.3f}")
PY
  "$TESSERA" eval --model "$family/model.h5" --tokens va >"$family.eval" ||
    { echo "FAIL: $family eval"; exit 1; }
  # 80 tokens after a 5-token prompt: past seq_len (32), so the caches refill twice.
  "$TESSERA" generate --model "$family/model.h5" --prompt "The " --tokens 80 --temperature 0 >"$family.gen" ||
    { echo "FAIL: $family generate"; exit 1; }
  [ "$(wc -c <"$family.gen")" -gt 40 ] || { echo "FAIL: $family generated too little"; cat "$family.gen"; exit 1; }
done

# Component combinations that make no sense: one line, exit 2.
expect_exit2 "$TESSERA" train run.toml --set model.family='"llama"' --set model.n_kv_head=3
grep -q "n_kv_head = 3 does not divide model.n_head = 4" err.txt || { cat err.txt; exit 1; }
expect_exit2 "$TESSERA" train run.toml --set model.family='"neox"' --set model.rope_fraction=0.3
grep -q "rope_fraction" err.txt || { cat err.txt; exit 1; }
expect_exit2 "$TESSERA" train run.toml --set model.family='"neox"' --set model.rope_fraction=0
expect_exit2 "$TESSERA" train run.toml --set model.family='"mistral"'
grep -q 'allowed: gpt2, llama, neox, bloom' err.txt || { cat err.txt; exit 1; }
expect_exit2 "$TESSERA" train run.toml --set model.position='"sinusoidal"'
expect_exit2 "$TESSERA" train run.toml --set train.device='"cuda"' --set train.precision='"bf16"' --set model.d_model=60 --set model.n_head=4
grep -q "head size d_model / n_head = 15" err.txt || { cat err.txt; exit 1; }
# Under mpirun: one "tessera: error:" line (mpirun adds its own banner), exit 2.
set +e
mpirun --oversubscribe -np 2 "$TESSERA" train run.toml --set model.family='"llama"' --set model.n_kv_head=1 \
  --set parallel.tp=2 >mpi.txt 2>&1
rc=$?
set -e
[ "$rc" -eq 2 ] && [ "$(grep -c '^tessera: error: ' mpi.txt)" -eq 1 ] &&
  grep -q "model.n_kv_head = 1 is not divisible by parallel.tp = 2" mpi.txt ||
  { echo "FAIL: tp 2 with one key/value head (exit $rc)"; cat mpi.txt; exit 1; }
echo "families: ok"
