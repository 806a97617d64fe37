#!/usr/bin/env bash
# End to end: a tiny grouped-query LLaMA (family = "llama", n_kv_head < n_head) exported to
# Hugging Face LlamaForCausalLM and imported back round-trips exactly: the re-export's
# model.safetensors is byte-identical, the imported checkpoint's model tensors bitwise equal the
# original's, eval --ids gives the same logits; q/k/v_proj and gate/up_proj are the fused rows
# of attn.qkv and mlp.fc. A model LlamaForCausalLM cannot compute, and a config.json that
# changes the math in ways tessera lacks, are refused with one line naming the field.
set -euo pipefail
TESSERA=$1
SRC=$2
source "$SRC/tests/lib.sh"  # scratch dir, tr/ shards, PY
cat > llama.toml <<'TOML'
[model]
family = "llama"
n_layer = 2
d_model = 32
n_head = 4
n_kv_head = 2
seq_len = 16
rope_theta = 500000.0
[train]
steps = 4
micro_batch = 2
global_batch = 4
threads = 2
[optim]
lr = 3e-3
[data]
train = "tr"
[checkpoint]
every = 4
[log]
dir = "run"
every = 4
TOML
"$TESSERA" train llama.toml >/dev/null
CKPT=run/checkpoints/step_00000004
test -f "$CKPT/index.h5" || { echo "FAIL: no checkpoint at $CKPT"; exit 1; }

fail() { echo "FAIL: $*"; exit 1; }
expect_exit2() {  # expect_exit2 PATTERN CMD...: exit code 2, one line on stderr matching PATTERN
  local pattern=$1
  shift
  set +e
  "$@" 2>err.txt >out.txt
  local rc=$?
  set -e
  [ "$rc" -eq 2 ] || { cat out.txt err.txt; fail "'$*' exited $rc, wanted 2"; }
  [ "$(wc -l <err.txt)" -eq 1 ] || { cat err.txt; fail "'$*' printed more than one line on stderr"; }
  grep -q -- "$pattern" err.txt || { cat err.txt; fail "'$*' did not mention $pattern"; }
}

# export -> import -> export
"$TESSERA" export "$CKPT" --format hf --out hf1 >export.txt
grep -q "LlamaForCausalLM names" export.txt || { cat export.txt; fail "export did not name LlamaForCausalLM"; }
"$TESSERA" import hf1 --out imported >/dev/null
"$TESSERA" export imported --format hf --out hf2 >/dev/null
cmp -s hf1/model.safetensors hf2/model.safetensors || fail "the re-exported model.safetensors differs"
cmp -s hf1/config.json hf2/config.json || fail "the re-exported config.json differs"
"$TESSERA" inspect imported | grep -q "verify: ok" || fail "the imported checkpoint does not verify"
"$PY" - "$CKPT" <<'PY'
import json, struct, sys
import h5py
import numpy as np

def tensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name != "__metadata__":
            assert info["dtype"] == "F32", (name, info["dtype"])
            b, e = info["data_offsets"]
            out[name] = np.frombuffer(raw[8 + n + b:8 + n + e], np.float32).reshape(info["shape"])
    return out

a = tensors("hf1/model.safetensors")
cfg = json.load(open("hf1/config.json"))
want = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 257,
        "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 16, "hidden_act": "silu",
        "rope_theta": 500000.0, "attention_bias": False, "mlp_bias": False,
        "tie_word_embeddings": False, "bos_token_id": 256, "eos_token_id": 256}
for k, v in want.items():
    assert cfg[k] == v, (k, cfg[k], v)
F = cfg["intermediate_size"]
names = {"model.embed_tokens.weight": (257, 32), "lm_head.weight": (257, 32), "model.norm.weight": (32,)}
for l in range(2):
    p = f"model.layers.{l}."
    names.update({p + "input_layernorm.weight": (32,), p + "post_attention_layernorm.weight": (32,),
                  p + "self_attn.q_proj.weight": (32, 32), p + "self_attn.k_proj.weight": (16, 32),
                  p + "self_attn.v_proj.weight": (16, 32), p + "self_attn.o_proj.weight": (32, 32),
                  p + "mlp.gate_proj.weight": (F, 32), p + "mlp.up_proj.weight": (F, 32),
                  p + "mlp.down_proj.weight": (32, F)})
assert {k: tuple(v.shape) for k, v in a.items()} == names, sorted(a)
with h5py.File(sys.argv[1] + "/index.h5", "r") as f, h5py.File("imported/index.h5", "r") as g:
    assert set(f["model"]) == set(g["model"]), set(f["model"]) ^ set(g["model"])
    for name in f["model"]:
        x, y = f["model"][name][()], g["model"][name][()]
        assert x.dtype == y.dtype == np.float32 and x.shape == y.shape, name
        assert np.array_equal(x.view(np.uint32), y.view(np.uint32)), f"model/{name} differs bitwise"
    # The fused rows are the HF tensors in order: attn.qkv = [q; k; v], mlp.fc = [gate; up].
    qkv = f["model"]["h.1.attn.qkv.weight"][()]
    p = "model.layers.1."
    assert np.array_equal(qkv, np.concatenate([a[p + "self_attn.q_proj.weight"], a[p + "self_attn.k_proj.weight"],
                                               a[p + "self_attn.v_proj.weight"]]))
    fc = f["model"]["h.1.mlp.fc.weight"][()]
    assert np.array_equal(fc, np.concatenate([a[p + "mlp.gate_proj.weight"], a[p + "mlp.up_proj.weight"]]))
    wte = g["model"]["wte"][()]
    assert wte.shape == (384, 32) and not wte[257:].any(), "padding rows of the import are not zero"
print(f"llama round trip exact: {len(a)} exported tensors, model tensors bitwise equal")
PY

# eval --ids: the same logits from the original and the imported checkpoint
echo '[[256, 84, 104, 101, 32, 113], [72, 105]]' >ids.json
"$TESSERA" eval --model "$CKPT" --ids ids.json --logits l1.npy >e1.txt
"$TESSERA" eval --model imported --ids ids.json --logits l2.npy >e2.txt
cmp -s e1.txt e2.txt || fail "eval --ids differs: $(cat e1.txt) vs $(cat e2.txt)"
cmp -s l1.npy l2.npy || fail "logits differ between the original and the imported checkpoint"

# A llama tessera model that LlamaForCausalLM cannot compute is refused before anything is written.
"$TESSERA" train llama.toml --set model.qkv_bias=true --set log.dir=run_qkv --set train.steps=1 \
  --set checkpoint.every=1 >/dev/null
expect_exit2 "qkv_bias" "$TESSERA" export run_qkv/checkpoints/step_00000001 --format hf --out hf_qkv
test ! -e hf_qkv || fail "a refused export left hf_qkv behind"

# config.json fields that change the math and that tessera lacks: one line naming file and field.
refused() {  # refused FIELD PYTHON_EDIT: import of hf1 with config.json edited must name FIELD
  rm -rf bad && mkdir bad && cp hf1/model.safetensors bad/
  "$PY" -c "import json; c = json.load(open('hf1/config.json')); $2; json.dump(c, open('bad/config.json', 'w'))"
  expect_exit2 "bad/config.json: .*$1" "$TESSERA" import bad --out bad_ckpt
}
refused rope_scaling "c['rope_scaling'] = {'rope_type': 'linear', 'factor': 2.0}"
refused hidden_act "c['hidden_act'] = 'gelu'"
refused head_dim "c['head_dim'] = 16"
refused sliding_window "c['sliding_window'] = 4096"
refused partial_rotary_factor "c['partial_rotary_factor'] = 0.5"
refused attention_bias "c['attention_bias'] = True"
echo "PASS"
