#!/usr/bin/env bash
# tessera import / export of a 1.1B-parameter LLaMA-shaped model (TinyLlama's shape: 22 layers,
# d_model 2048, 32 heads, 4 key/value heads, SwiGLU 5632, vocabulary 32000; random F32 weights
# written here as a Hugging Face directory), against copying the same bytes with dd in the same
# run (through the page cache and with direct I/O; the faster is the disk rate). Page cache dropped before every timed step (root), so each reads from disk; every step
# ends with its data synced (dd conv=fsync; tessera syncs what it writes).
#   bench/hf_interchange_bench.sh [WORKDIR]      (needs ~20 GB free there; build/tessera)
# Prints wall seconds, MB/s of the model's bytes, peak RSS, and the ratios.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TESSERA=${TESSERA:-$ROOT/build/tessera}
WORK=${1:-$(mktemp -d)}
mkdir -p "$WORK"
cd "$WORK"
trap 'rm -rf "$WORK"/hf "$WORK"/ckpt "$WORK"/hf_out "$WORK"/copy.bin' EXIT
PY=/usr/bin/python3

drop() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || echo "(cannot drop the page cache: figures include cached reads)"; }
# timed NAME CMD...: wall seconds and peak RSS (KiB) into NAME.time
timed() {
  local name=$1
  shift
  drop
  /usr/bin/time -f "%e %M" -o "$name.time" "$@" >"$name.log" 2>&1 || { cat "$name.log"; exit 1; }
}

rm -rf hf ckpt hf_out copy.bin
mkdir hf
"$PY" - <<'PY'
import json, struct
import numpy as np
L, C, H, K, F, V = 22, 2048, 32, 4, 5632, 32000
D = C // H
shapes = {"model.embed_tokens.weight": (V, C), "model.norm.weight": (C,), "lm_head.weight": (V, C)}
for l in range(L):
    p = f"model.layers.{l}."
    shapes.update({p + "input_layernorm.weight": (C,), p + "post_attention_layernorm.weight": (C,),
                   p + "self_attn.q_proj.weight": (H * D, C), p + "self_attn.k_proj.weight": (K * D, C),
                   p + "self_attn.v_proj.weight": (K * D, C), p + "self_attn.o_proj.weight": (C, H * D),
                   p + "mlp.gate_proj.weight": (F, C), p + "mlp.up_proj.weight": (F, C),
                   p + "mlp.down_proj.weight": (C, F)})
header, offset = {"__metadata__": {"format": "pt"}}, 0
for name, shape in shapes.items():
    n = int(np.prod(shape)) * 4
    header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + n]}
    offset += n
text = json.dumps(header).encode()
text += b" " * (-(8 + len(text)) % 8)
rng = np.random.default_rng(0)
with open("hf/model.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text)
    for name, shape in shapes.items():
        f.write((rng.standard_normal(shape, dtype=np.float32) * 0.02).tobytes())
json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": V, "hidden_size": C,
           "intermediate_size": F, "num_hidden_layers": L, "num_attention_heads": H, "num_key_value_heads": K,
           "max_position_embeddings": 2048, "hidden_act": "silu", "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
           "tie_word_embeddings": False}, open("hf/config.json", "w"))
print(f"hf/model.safetensors: {sum(int(np.prod(s)) for s in shapes.values())} parameters, {offset} data bytes")
PY
BYTES=$(stat -c %s hf/model.safetensors)
LARGEST=$((32000 * 2048 * 4))

timed dd dd if=hf/model.safetensors of=copy.bin bs=8M conv=fsync
rm -f copy.bin
timed dd_direct dd if=hf/model.safetensors of=copy.bin bs=8M iflag=direct oflag=direct conv=fsync
rm -f copy.bin
timed import "$TESSERA" import hf --out ckpt
timed export "$TESSERA" export ckpt --format hf --out hf_out
timed dd_back dd if=ckpt/shard_00000.h5 of=copy.bin bs=8M conv=fsync

report() {  # report NAME: seconds, MB/s of the model bytes, RSS
  read -r s rss <"$1.time"
  awk -v n="$1" -v s="$s" -v rss="$rss" -v b="$BYTES" -v big="$LARGEST" \
    'BEGIN { printf "%-8s %7.2f s  %7.0f MB/s  peak RSS %6.0f MiB (%.2f x the largest tensor)\n", n, s, b / s / 1e6, rss / 1024, rss * 1024 / big }'
}
echo "model bytes $BYTES, largest tensor $LARGEST bytes (embed_tokens, lm_head)"
for n in dd dd_direct import export dd_back; do report $n; done
# The disk rate: the faster of dd through the page cache and dd with direct I/O.
read -r dd_s _ <dd.time
read -r ddd_s _ <dd_direct.time
dd_s=$(awk -v a="$dd_s" -v b="$ddd_s" 'BEGIN { print (a < b ? a : b) }')
read -r imp_s _ <import.time
read -r exp_s _ <export.time
read -r back_s _ <dd_back.time
back_s=$(awk -v a="$back_s" -v b="$dd_s" 'BEGIN { print (a < b ? a : b) }')
awk -v a="$dd_s" -v i="$imp_s" -v e="$exp_s" -v b="$back_s" \
  'BEGIN { printf "import at %.2f of dd'"'"'s rate (safetensors -> checkpoint); export at %.2f of dd'"'"'s rate (checkpoint -> safetensors)\n", a / i, b / e }'
