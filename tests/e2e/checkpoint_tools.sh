#!/usr/bin/env bash
# End to end: the checkpoint tools on a tiny trained model. inspect verifies the shards; export
# to Hugging Face GPT-2 and import back round-trip exactly (the re-export's tensors are
# byte-identical, the imported checkpoint's model tensors bitwise equal the original's); eval
# --ids gives the same loss and logits on the original and the imported checkpoint; training
# resumes from the import; a corrupted or truncated shard makes inspect exit 2 with one line
# naming it.
set -euo pipefail
TESSERA=$1
SRC=$2
source "$SRC/tests/lib.sh"  # scratch dir, tr/ shards, PY
cat > tiny.toml <<'TOML'
[model]
n_layer = 2
d_model = 32
n_head = 4
seq_len = 16
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
every = 5
[log]
dir = "run"
every = 5
TOML
"$TESSERA" train tiny.toml >/dev/null
CKPT=run/checkpoints/step_00000010
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

# inspect
"$TESSERA" inspect "$CKPT" >inspect.txt || { cat inspect.txt; fail "inspect exited non-zero"; }
for word in verify "step         10" layout "h.1.mlp.proj.weight" "optim/exp_avg_sq" shard_00000.h5 "tessera 0"; do
  grep -q -- "$word" inspect.txt || { cat inspect.txt; fail "inspect output lacks '$word'"; }
done

# export -> import -> export
"$TESSERA" export "$CKPT" --format hf --out hf1 >/dev/null
# The exported directory carries a model card: what, from which checkpoint, and the whole config.
step=$(basename "$CKPT" | sed 's/step_0*//')
for want in "library_name: transformers" "step $step, " 'from_pretrained("hf1")' "^\[model\]" "$CKPT"; do
  grep -q -- "$want" hf1/README.md || { cat hf1/README.md; fail "hf1/README.md lacks '$want'"; }
done
"$TESSERA" import hf1 --out imported >/dev/null
"$TESSERA" export imported --format hf --out hf2 >/dev/null
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
            out[name] = (tuple(info["shape"]), raw[8 + n + b:8 + n + e])
    return out, header.get("__metadata__")

a, meta = tensors("hf1/model.safetensors")
b, _ = tensors("hf2/model.safetensors")
assert meta == {"format": "pt"}, meta
assert set(a) == set(b), set(a) ^ set(b)
diff = [k for k in a if a[k] != b[k]]
assert not diff, f"re-exported tensors differ: {diff}"
cfg = json.load(open("hf1/config.json"))
assert cfg["vocab_size"] == 257 and a["transformer.wte.weight"][0] == (257, 32), cfg
assert a["transformer.h.0.attn.c_attn.weight"][0] == (32, 96)
with h5py.File(sys.argv[1] + "/index.h5", "r") as f, h5py.File("imported/index.h5", "r") as g:
    assert set(f["model"]) == set(g["model"]), set(f["model"]) ^ set(g["model"])
    for name in f["model"]:
        x, y = f["model"][name][()], g["model"][name][()]
        assert x.dtype == y.dtype == np.float32 and x.shape == y.shape, name
        assert np.array_equal(x.view(np.uint32), y.view(np.uint32)), f"model/{name} differs bitwise"
    assert g.attrs["has_optimizer"] == 0 and g.attrs["step"] == 0
    assert "optim/exp_avg" not in g
print(f"round trip exact: {len(a)} exported tensors, model tensors bitwise equal")
PY

# eval --ids on the original and the imported checkpoint
echo '[[256, 84, 104, 101, 32, 113], [72, 105], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 256]]' >ids.json
"$TESSERA" eval --model "$CKPT" --ids ids.json --logits l1.npy >e1.txt
"$TESSERA" eval --model imported --ids ids.json --logits l2.npy >e2.txt
cat e1.txt
grep -q '"tokens": 21}' e1.txt || fail "eval --ids counted $(cat e1.txt), wanted 21 predictions"
cmp -s e1.txt e2.txt || fail "eval --ids differs: $(cat e1.txt) vs $(cat e2.txt)"
cmp -s l1.npy l2.npy || fail "logits differ between the original and the imported checkpoint"
"$PY" -c "
import numpy as np
z = np.load('l1.npy')
assert z.shape == (24, 257) and z.dtype == np.float32 and np.isfinite(z).all(), (z.shape, z.dtype)"

# training resumes from the import (moments start at zero)
"$TESSERA" train tiny.toml --set checkpoint.resume=imported --set log.dir=run2 --set train.steps=2 \
  --set checkpoint.every=0 >train2.txt 2>&1 || { cat train2.txt; fail "training from the import failed"; }
grep -q "resuming from imported" train2.txt || { cat train2.txt; fail "training did not resume from the import"; }

# user mistakes: one line, exit 2
echo '[[1, 2, 3], [7]]' >short.json
expect_exit2 "short.json: sequence 1" "$TESSERA" eval --model "$CKPT" --ids short.json
echo '[[1, 2, 999]]' >big.json
expect_exit2 "big.json: sequence 0, position 2" "$TESSERA" eval --model "$CKPT" --ids big.json
expect_exit2 "imported: already exists" "$TESSERA" import hf1 --out imported
expect_exit2 "format" "$TESSERA" export "$CKPT" --format onnx --out x
expect_exit2 "missing_dir" "$TESSERA" inspect missing_dir

# a flipped byte in the middle of a shard, then a truncated shard
cp -r "$CKPT" corrupt
"$PY" - <<'PY'
import os
p = "corrupt/shard_00000.h5"
with open(p, "r+b") as f:
    f.seek(os.path.getsize(p) // 2)
    b = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([b[0] ^ 0xFF]))
PY
expect_exit2 "corrupt/shard_00000.h5: shard fails its checksum" "$TESSERA" inspect corrupt
grep -q "verify: FAILED" out.txt || fail "inspect of a corrupted shard printed no verify line"
grep -q "h.0.attn.qkv.weight" out.txt || fail "inspect of a corrupted shard printed no table"
expect_exit2 "corrupt/shard_00000.h5" "$TESSERA" export corrupt --format hf --out x
cp -r "$CKPT" short
truncate -s $(( $(stat -c %s short/shard_00000.h5) / 2 )) short/shard_00000.h5
expect_exit2 "short/shard_00000.h5: shard is .* (truncated)" "$TESSERA" inspect short
expect_exit2 "short/shard_00000.h5" "$TESSERA" eval --model short --ids ids.json
echo "checkpoint tools ok"
