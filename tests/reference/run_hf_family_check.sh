#!/usr/bin/env bash
# ctest driver, one family per run (llama, neox, bloom, gpt2), checked against transformers:
#  1. tessera -> transformers: tiny models of the family trained by tessera under tp 2 x pp 2
#     (mpirun -np 4), exported with `tessera export --format hf` (the first variant in shards);
#     transformers' AutoModelForCausalLM loads the export, and its logits and gradients on a few sequences
#     equal `tessera eval --ids --logits --grads` on the checkpoint.
#  2. transformers -> tessera: a random model of the family's config class (every weight
#     perturbed, norms and biases included) saved by transformers, imported by `tessera import`,
#     compared the same way.
# hf_model_check.py does the comparing (1e-5 relative against transformers in float64). Exit 77
# (skipped) when the interpreter, torch or transformers is missing (scripts/test-transformers
# makes a venv with them).
# usage: run_hf_family_check.sh FAMILY TESSERA PYTHON HF_MODEL_CHECK_PY SRC
set -euo pipefail
FAMILY=$1 TESSERA=$2 PY=$3 SCRIPT=$4 SRC=$5
if [[ ! -x $PY ]]; then
  echo "SKIP: $PY not found (set -DTESSERA_REFERENCE_PYTHON=... to an interpreter with transformers)"
  exit 77
fi
"$PY" -c "import torch, numpy, transformers, safetensors" 2>/dev/null || {
  echo "SKIP: $PY has no torch/numpy/transformers (scripts/test-transformers installs them in a venv)"
  exit 77
}
PY_REF=$PY
source "$SRC/tests/lib.sh"  # scratch dir, tr/ shards (sets PY to the h5py interpreter)
PY=$PY_REF

# Per family: the tessera variants (--set overrides of base.toml, each trained under tp 2 x pp 2)
# and the transformers config of the random model.
case $FAMILY in
  llama)
    shape="d_model = 48
n_head = 4
n_kv_head = 2"
    variants=("gqa --set model.rope_theta=500000.0 --set model.norm_eps=1e-6"
              "bias_tied --set model.bias=true --set model.tie_embeddings=true --set model.d_ff=48"
              "mqa --set model.n_kv_head=1 --set parallel.tp=1")  # one kv head: tp 1 x pp 2 x dp 2
    hf_model="LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=80, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32, rope_theta=20000.0,
        rms_norm_eps=1e-5, initializer_range=0.1)"
    ;;
  neox)
    shape="d_model = 64
n_head = 4"  # 16 dims per head: 4 rotated at Pythia's 25%
    variants=("pythia --set model.rope_fraction=0.5"
              "sequential_tied --set model.residual=\"sequential\" --set model.tie_embeddings=true --set model.activation=\"gelu_tanh\"")
    hf_model="GPTNeoXConfig(vocab_size=300, hidden_size=64, intermediate_size=100, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=32, rotary_pct=0.25, rotary_emb_base=20000,
        use_parallel_residual=True, layer_norm_eps=1e-5, initializer_range=0.1)"
    ;;
  bloom)
    shape="d_model = 48
n_head = 6"  # not a power of two: BLOOM's extra ALiBi slopes
    variants=("tied" "untied --set model.tie_embeddings=false --set model.norm_eps=1e-6")
    hf_model="BloomConfig(vocab_size=300, hidden_size=48, n_layer=2, n_head=3, initializer_range=0.1)"
    ;;
  gpt2)
    shape="d_model = 48
n_head = 4"
    variants=("tied" "untied --set model.tie_embeddings=false")
    hf_model="GPT2Config(vocab_size=300, n_embd=32, n_layer=2, n_head=4, n_positions=32,
        initializer_range=0.1)"
    ;;
  *) echo "unknown family $FAMILY"; exit 2 ;;
esac

cat > base.toml <<TOML
[model]
family = "$FAMILY"
n_layer = 2
$shape
seq_len = 24
[train]
steps = 4
micro_batch = 1
global_batch = 2
threads = 1
[optim]
lr = 3e-3
[data]
train = "tr"
[checkpoint]
every = 4
TOML
"$PY" - <<'PY'
import json, random
random.seed(7)
text = open("corpus/valid/en.txt", "rb").read()
seqs = [[256, 84], list(text[:9]), [256] + list(text[100:123]), [random.randrange(257) for _ in range(17)]]
json.dump(seqs, open("ids.json", "w"))
PY
status=0
for variant in "${variants[@]}"; do
  eval "set -- $variant"
  name=$1
  shift
  echo "== $FAMILY $name (trained under tp 2 x pp 2): $*"
  timeout 300 mpirun --oversubscribe -np 4 "$TESSERA" train base.toml --set log.dir="run_$name" \
    --set parallel.tp=2 --set parallel.pp=2 "$@" >"train_$name.log" 2>&1 || { cat "train_$name.log"; exit 1; }
  ckpt="run_$name/checkpoints/$(cat "run_$name/checkpoints/latest")"
  # The first variant exported in shards (model.safetensors.index.json), the others in one file.
  shard=()
  [[ $variant == "${variants[0]}" ]] && shard=(--max-shard-size 40KB)
  "$TESSERA" export "$ckpt" --format hf --out "hf_$name" "${shard[@]}" >/dev/null
  "$TESSERA" eval --model "$ckpt" --ids ids.json --logits "logits_$name.npy" --grads "grads_$name.safetensors"
  "$PY" "$SCRIPT" "hf_$name" ids.json "logits_$name.npy" "grads_$name.safetensors" 2>/dev/null || status=1
done

echo "== $FAMILY: import of a random model saved by transformers"
"$PY" - "$hf_model" <<'PY' 2>/dev/null
import sys
import torch
import transformers
torch.manual_seed(3)
config = eval("transformers." + sys.argv[1])
model = transformers.AutoModelForCausalLM.from_config(config)
with torch.no_grad():  # norms and biases away from their initial ones, so a misplaced one shows
    for n, p in model.named_parameters():
        if p.dim() == 1 and n.endswith("weight"):
            p.uniform_(0.5, 1.5)
        elif n.endswith("bias"):
            p.uniform_(-0.3, 0.3)
model.save_pretrained("hf_saved")
PY
"$TESSERA" import hf_saved --out imported --config base.toml >/dev/null
"$TESSERA" eval --model imported --ids ids.json --logits logits_saved.npy --grads grads_saved.safetensors
"$PY" "$SCRIPT" hf_saved ids.json logits_saved.npy grads_saved.safetensors 2>/dev/null || status=1
exit $status
