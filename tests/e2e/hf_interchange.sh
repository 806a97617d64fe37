#!/usr/bin/env bash
# End to end, without transformers: Hugging Face interchange of the NeoX and BLOOM families and of
# sharded weights.
#  - neox (partial rotary, parallel residual) and bloom (6 heads, embedding norm) checkpoints
#    exported and imported back: model tensors bitwise equal, the re-export byte-identical,
#    query_key_value the per-head interleave of attn.qkv's [q; k; v] rows.
#  - --max-shard-size cuts the export into model-0000i-of-0000n.safetensors listed by
#    model.safetensors.index.json (total_size, weight_map); importing the sharded directory
#    gives the same checkpoint as importing the one-file export.
#  - F16 and BF16 weights import to exactly their values.
#  - Bad input, one line naming file and field, exit 2, nothing left at --out: a shard the index
#    names that is missing, a tensor of the wrong shape, an unknown model_type, an unsupported
#    config field; an export that fails leaves an earlier export at --out untouched.
set -euo pipefail
TESSERA=$1
SRC=$2
source "$SRC/tests/lib.sh"  # scratch dir, tr/ shards, PY

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
train() {  # train NAME FAMILY [--set ...]: a tiny checkpoint of FAMILY in run_NAME
  local name=$1 family=$2
  shift 2
  "$TESSERA" train tiny.toml --set model.family="\"$family\"" --set model.n_layer=2 --set model.d_model=48 \
    --set model.n_head=6 --set train.steps=3 --set checkpoint.every=3 --set log.dir="run_$name" "$@" >/dev/null
  echo "run_$name/checkpoints/step_00000003"
}

# Every model tensor of two checkpoints bitwise equal.
same_model() {
  "$PY" - "$1" "$2" <<'PY'
import sys
import h5py
import numpy as np
with h5py.File(sys.argv[1] + "/index.h5", "r") as f, h5py.File(sys.argv[2] + "/index.h5", "r") as g:
    assert set(f["model"]) == set(g["model"]), set(f["model"]) ^ set(g["model"])
    for name in f["model"]:
        x, y = f["model"][name][()], g["model"][name][()]
        assert x.shape == y.shape and np.array_equal(x.view(np.uint32), y.view(np.uint32)), name
PY
}

for family in neox bloom; do
  ckpt=$(train "$family" "$family" --set model.rope_fraction=0.5)
  "$TESSERA" export "$ckpt" --format hf --out "hf_$family" >"export_$family.txt"
  "$TESSERA" import "hf_$family" --out "imp_$family" >/dev/null
  "$TESSERA" export "imp_$family" --format hf --out "hf2_$family" >/dev/null
  cmp -s "hf_$family/model.safetensors" "hf2_$family/model.safetensors" || fail "$family: re-export differs"
  cmp -s "hf_$family/config.json" "hf2_$family/config.json" || fail "$family: re-exported config.json differs"
  same_model "$ckpt" "imp_$family" || fail "$family: import(export) is not bitwise the checkpoint"
  "$PY" - "$ckpt" "$family" <<'PY'
import json, struct, sys
import h5py
import numpy as np
ckpt, family = sys.argv[1:3]
d = f"hf_{family}"
raw = open(d + "/model.safetensors", "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8:8 + n])
def tensor(name):
    b, e = header[name]["data_offsets"]
    return np.frombuffer(raw[8 + n + b:8 + n + e], np.float32).reshape(header[name]["shape"])
qkv_name = {"neox": "gpt_neox.layers.1.attention.query_key_value.weight",
            "bloom": "transformer.h.1.self_attention.query_key_value.weight"}[family]
H, D = 6, 8
with h5py.File(ckpt + "/index.h5", "r") as f:
    ours = f["model"]["h.1.attn.qkv.weight"][()]  # rows [q (H D); k; v]
theirs = tensor(qkv_name)                          # rows [q_0; k_0; v_0; q_1; ...]
want = ours.reshape(3, H, D, -1).transpose(1, 0, 2, 3).reshape(3 * H * D, -1)
assert np.array_equal(theirs, want), "query_key_value is not attn.qkv interleaved per head"
cfg = json.load(open(d + "/config.json"))
arch = {"neox": "GPTNeoXForCausalLM", "bloom": "BloomForCausalLM"}[family]
assert cfg["architectures"] == [arch], cfg["architectures"]
print(f"{family}: round trip exact, {len(header) - 1} tensors, query_key_value interleaved per head")
PY
done

# Sharded export: every file under the limit but for single tensors larger than it, the index
# listing every tensor once, the import equal to the one-file import.
ckpt=$(train llama llama --set model.n_kv_head=2)
"$TESSERA" export "$ckpt" --format hf --out hf_one >/dev/null
"$TESSERA" export "$ckpt" --format hf --out hf_sharded --max-shard-size 20KB >sharded.txt
grep -q "model.safetensors.index.json" sharded.txt || { cat sharded.txt; fail "sharded export did not say so"; }
test ! -e hf_sharded/model.safetensors || fail "a sharded export also wrote model.safetensors"
"$PY" - <<'PY'
import glob, json, os, struct
index = json.load(open("hf_sharded/model.safetensors.index.json"))
files = sorted(glob.glob("hf_sharded/model-*-of-*.safetensors"))
assert len(files) > 2, files
total, seen = 0, {}
for path in files:
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    size = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        size += e - b
        seen[name] = os.path.basename(path)
    assert size <= 20000 or len(header) == 2, (path, size)  # one tensor larger than the limit
    total += size
one = open("hf_one/model.safetensors", "rb").read()
(n,) = struct.unpack("<Q", one[:8])
assert set(json.loads(one[8:8 + n])) - {"__metadata__"} == set(seen)
assert index["weight_map"] == seen, "weight_map does not place every tensor in its file"
assert index["metadata"]["total_size"] == total, (index["metadata"], total)
print(f"sharded export: {len(files)} files, {len(seen)} tensors, {total} bytes")
PY
"$TESSERA" import hf_sharded --out imp_sharded >/dev/null
"$TESSERA" import hf_one --out imp_one >/dev/null
same_model imp_one imp_sharded || fail "the sharded import differs from the one-file import"
same_model "$ckpt" imp_sharded || fail "the sharded import differs from the checkpoint"

# F16 and BF16 weights (as published checkpoints ship them) import to exactly their values.
for dtype in F16 BF16; do
  mkdir "half_$dtype" && cp hf_one/config.json "half_$dtype/"
  "$PY" - "$dtype" <<'PY'
import json, struct, sys
import numpy as np
dtype = sys.argv[1]
raw = open("hf_one/model.safetensors", "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8:8 + n])
out, data, offset = {}, [], 0
for name in sorted(k for k in header if k != "__metadata__"):
    b, e = header[name]["data_offsets"]
    x = np.frombuffer(raw[8 + n + b:8 + n + e], np.float32)
    if dtype == "F16":
        h = x.astype(np.float16).tobytes()
    else:  # round to nearest even on the upper 16 bits
        u = x.view(np.uint32).astype(np.uint64)
        h = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16).tobytes()
    out[name] = {"dtype": dtype, "shape": header[name]["shape"], "data_offsets": [offset, offset + len(h)]}
    data.append(h)
    offset += len(h)
text = json.dumps(out).encode()
text += b" " * (-(8 + len(text)) % 8)
open(f"half_{dtype}/model.safetensors", "wb").write(struct.pack("<Q", len(text)) + text + b"".join(data))
PY
  "$TESSERA" import "half_$dtype" --out "imp_$dtype" >/dev/null
  "$TESSERA" export "imp_$dtype" --format hf --out "hf_$dtype" >/dev/null
  "$PY" - "$dtype" <<'PY'
import json, struct, sys
import numpy as np
dtype = sys.argv[1]
def tensors(path, half):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        buf = raw[8 + n + b:8 + n + e]
        if info["dtype"] == "F16":
            x = np.frombuffer(buf, np.float16).astype(np.float32)
        elif info["dtype"] == "BF16":
            x = (np.frombuffer(buf, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            x = np.frombuffer(buf, np.float32)
        out[name] = x
    return out
want, got = tensors(f"half_{dtype}/model.safetensors", True), tensors(f"hf_{dtype}/model.safetensors", False)
assert set(want) == set(got)
for name in want:
    assert np.array_equal(want[name], got[name]), f"{dtype}: {name} is not its stored value"
print(f"{dtype} import exact: {len(want)} tensors")
PY
done

# Bad input: nothing is left at --out.
cp -r hf_sharded missing
rm "missing/$(ls missing | grep -m1 'model-00002-of')"
expect_exit2 "missing/model.safetensors.index.json: shard model-00002-of-.* is missing" \
  "$TESSERA" import missing --out x_missing
test ! -e x_missing || fail "a failed import left x_missing"
ls -a | grep -q "x_missing.import" && fail "a failed import left its staging directory"

mkdir wrong && cp hf_neox/config.json wrong/
"$PY" - <<'PY'
import json, struct
raw = open("hf_neox/model.safetensors", "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8:8 + n])
name = "gpt_neox.layers.0.attention.dense.weight"
header[name]["shape"] = header[name]["shape"][::-1] + [1]  # same bytes, wrong shape
text = json.dumps(header).encode()
text += b" " * (-(8 + len(text)) % 8)
open("wrong/model.safetensors", "wb").write(struct.pack("<Q", len(text)) + text + raw[8 + n:])
PY
expect_exit2 "wrong/model.safetensors: tensor gpt_neox.layers.0.attention.dense.weight is \[48, 48, 1\]" \
  "$TESSERA" import wrong --out x_wrong
test ! -e x_wrong || fail "a failed import left x_wrong"

edit_config() {  # edit_config DIR PYTHON_EDIT: a copy of hf_neox with config.json edited
  rm -rf "$1" && mkdir "$1" && cp hf_neox/model.safetensors "$1/"
  "$PY" -c "import json; c = json.load(open('hf_neox/config.json')); $2; json.dump(c, open('$1/config.json', 'w'))"
}
edit_config unknown "c['model_type'] = 'mamba'"
expect_exit2 'unknown/config.json: model_type "mamba" is not supported' "$TESSERA" import unknown --out x_unknown
edit_config scaled "c['rope_scaling'] = {'type': 'dynamic', 'factor': 2.0}"
expect_exit2 "scaled/config.json: rope_scaling" "$TESSERA" import scaled --out x_scaled
edit_config act "c['hidden_act'] = 'relu'"
expect_exit2 "act/config.json: hidden_act" "$TESSERA" import act --out x_act
test ! -e x_unknown && test ! -e x_scaled && test ! -e x_act || fail "a refused import left its --out"

# An export that fails (a model its class cannot compute) leaves an earlier export as it was.
cp -r hf_bloom before
bad=$(train badbloom bloom --set model.d_ff=100)
expect_exit2 "d_ff" "$TESSERA" export "$bad" --format hf --out hf_bloom
diff -r before hf_bloom >/dev/null || fail "a refused export changed the earlier export at --out"
expect_exit2 "max-shard-size" "$TESSERA" export "$ckpt" --format hf --out x --max-shard-size lots
echo "PASS"
