#!/usr/bin/env bash
# ctest driver: trains tiny grouped-query LLaMAs (family = "llama"; one untied with rope_theta
# 500000, one with biases, tied embeddings and multi-query attention) for a few steps, exports
# each checkpoint with `tessera export --format hf`, takes `tessera eval --ids --logits` on a few
# sequences, and has hf_llama_check.py compare those logits with transformers'
# LlamaForCausalLM.from_pretrained on the exported directory; then the other way, a directory
# transformers saved, imported by tessera and compared the same way. Exit 77 (skipped) when the
# interpreter, torch or transformers is missing (scripts/test-transformers makes a venv with them).
# usage: run_hf_llama_check.sh TESSERA PYTHON HF_LLAMA_CHECK_PY SRC
set -euo pipefail
TESSERA=$1 PY=$2 SCRIPT=$3 SRC=$4
if [[ ! -x $PY ]]; then
  echo "SKIP: $PY not found (set -DTESSERA_REFERENCE_PYTHON=... to an interpreter with transformers)"
  exit 77
fi
"$PY" -c "import torch, numpy, transformers" 2>/dev/null || {
  echo "SKIP: $PY has no torch/numpy/transformers (scripts/test-transformers installs them in a venv)"
  exit 77
}
PY_REF=$PY
source "$SRC/tests/lib.sh"  # scratch dir, tr/ shards (sets PY to the h5py interpreter)
PY=$PY_REF
cat > base.toml <<'TOML'
[model]
family = "llama"
n_layer = 2
d_model = 32
n_head = 4
n_kv_head = 2
seq_len = 24
[train]
steps = 6
micro_batch = 2
global_batch = 4
threads = 2
[optim]
lr = 3e-3
[data]
train = "tr"
[checkpoint]
every = 6
TOML
"$PY" - <<'PY'
import json, random
random.seed(7)
text = open("corpus/valid/en.txt", "rb").read()
seqs = [[256, 84], list(text[:9]), [256] + list(text[100:123]), [random.randrange(257) for _ in range(17)]]
json.dump(seqs, open("ids.json", "w"))
PY
status=0
for variant in "gqa --set model.rope_theta=500000.0 --set model.norm_eps=1e-6" \
               "mqa_bias --set model.bias=true --set model.tie_embeddings=true --set model.n_kv_head=1 --set model.d_ff=48"; do
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
# The other way: a directory transformers itself saved (a random LlamaForCausalLM; transformers 5
# writes rope_theta into rope_parameters), imported by tessera and evaluated by both.
echo "== import of save_pretrained"
"$PY" - <<'PY' 2>/dev/null
import torch
from transformers import LlamaConfig, LlamaForCausalLM
torch.manual_seed(3)
config = LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=80, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
                     rope_theta=20000.0, rms_norm_eps=1e-5, initializer_range=0.1)
model = LlamaForCausalLM(config)
with torch.no_grad():  # norms away from their initial ones, so a misplaced norm shows
    for n, p in model.named_parameters():
        if n.endswith("norm.weight"):
            p.uniform_(0.5, 1.5)
model.save_pretrained("hf_saved")
PY
"$TESSERA" import hf_saved --out imported >/dev/null
"$TESSERA" eval --model imported --ids ids.json --logits logits_saved.npy
"$PY" "$SCRIPT" hf_saved ids.json logits_saved.npy || status=1
exit $status
