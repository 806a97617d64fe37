#!/usr/bin/env bash
# ctest driver: trains two tiny models (fp32 with an explicit d_ff and untied LM head; fp64
# with the defaults) for a few steps, exports each checkpoint with `tessera export --format hf`,
# takes `tessera eval --ids --logits` on a few sequences, and has hf_export_check.py compare
# those logits with an independent PyTorch GPT-2 (and transformers, when installed) run on the
# exported directory. Exit 77 (skipped) when the interpreter or torch is missing.
# usage: run_hf_export_check.sh TESSERA PYTHON HF_EXPORT_CHECK_PY SRC
set -euo pipefail
TESSERA=$1 PY=$2 SCRIPT=$3 SRC=$4
if [[ ! -x $PY ]]; then
  echo "SKIP: $PY not found (set -DTESSERA_REFERENCE_PYTHON=... to an interpreter with torch)"
  exit 77
fi
"$PY" -c "import torch, numpy" 2>/dev/null || { echo "SKIP: $PY has no torch/numpy"; exit 77; }
PY_REF=$PY
source "$SRC/tests/lib.sh"  # scratch dir, tr/ shards (sets PY to the h5py interpreter)
PY=$PY_REF
cat > base.toml <<'TOML'
[model]
n_layer = 2
d_model = 32
n_head = 4
seq_len = 24
[train]
steps = 10
micro_batch = 2
global_batch = 4
threads = 2
[optim]
lr = 3e-3
[data]
train = "tr"
[checkpoint]
every = 10
TOML
# Sequences of every allowed length class: 2 tokens, a few, the full window; ids up to EOD.
"$PY" - <<'PY'
import json, random
random.seed(7)
text = open("corpus/valid/en.txt", "rb").read()
seqs = [[256, 84], list(text[:9]), [256] + list(text[100:123]), [random.randrange(257) for _ in range(17)]]
json.dump(seqs, open("ids.json", "w"))
PY
status=0
for variant in "fp32 --set model.d_ff=96 --set model.tie_embeddings=false" "fp64 --set train.precision=fp64"; do
  set -- $variant
  name=$1
  shift
  echo "== $name: $*"
  "$TESSERA" train base.toml --set log.dir="run_$name" "$@" >/dev/null
  ckpt="run_$name/checkpoints/$(cat "run_$name/checkpoints/latest")"
  "$TESSERA" export "$ckpt" --format hf --out "hf_$name" >/dev/null
  "$TESSERA" eval --model "$ckpt" --ids ids.json --logits "logits_$name.npy"
  "$PY" "$SCRIPT" "hf_$name" ids.json "logits_$name.npy" || status=1
done
exit $status
