#!/usr/bin/env bash
# What a GPU session runs first, in one job: every CUDA op against its CPU twin, then GPT-2
# 124M (context 1024, bf16) throughput and MFU for tessera and PyTorch (torch.compile, flash
# attention) in the same run, then the same for a LLaMA-style 1.1B model (context 2048).
# Expects a CUDA build in build/ (scripts/build on a machine with nvcc); OUT_DIR (default $OUT
# or /tmp) receives the logs (6 files). About 4-6 minutes on an H100/H200; the LLaMA runs are
# capped at 150 s (tessera) and 210 s (PyTorch) so that the whole stays under 8.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT_DIR:-${OUT:-/tmp}}
steps=${STEPS:-20}
# Shared libraries the GPU image lacks (Open MPI, HDF5, ...) travel in .carry/lib (ignored by
# git); cuDNN and NCCL, where the system has none, come from python3's NVIDIA wheels.
if [ -d .carry/lib ]; then export LD_LIBRARY_PATH="$PWD/.carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; fi
for lib in cudnn:libcudnn.so.9 nccl:libnccl.so.2; do
  { ldconfig -p | grep -q "${lib#*:}" || [ -e "/usr/local/cuda/lib/${lib#*:}" ]; } && continue
  dir=$(python3 -c "import nvidia.${lib%%:*} as m; print(list(m.__path__)[0])" 2>/dev/null) &&
    export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$dir/lib"
done
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt"
build/tests/test_kernel 2>&1 | tee "$out/test_kernel.txt" | tail -25

tmp=$(mktemp -d)
# Any text will do for throughput: the model sees byte tokens in a 50257-entry vocabulary.
for f in /usr/share/dict/words "$0" README.md docs/*.md; do [ -f "$f" ] && cat "$f"; done > "$tmp/a.txt"
for i in $(seq 200); do cat "$tmp/a.txt"; done > "$tmp/text.txt"
build/tessera prepare --tokenizer byte --input "$tmp/text.txt" --out "$tmp/shards"
cat > "$tmp/gpt2.toml" <<TOML
[model]
n_layer = 12
d_model = 768
n_head = 12
seq_len = 1024
vocab_size = 50257
[train]
steps = $steps
micro_batch = 16
device = "cuda"
precision = "bf16"
[optim]
lr = 6e-4
warmup_steps = 5
[data]
train = "$tmp/shards"
[log]
dir = "$tmp/run"
every = 1
TOML
# summarize_tessera RUN_DIR WARMUP TOKENS_PER_STEP LABEL: tokens/s and MFU over the steps
# after the warm-up (total tokens / total step time), as the PyTorch scripts count them.
summarize_tessera() {
  [ -f "$1/metrics.jsonl" ] || { echo "tessera-gpu $4: no metrics (the run failed)"; return; }
  python3 - "$@" <<'PY'
import json, sys
run, warmup, tokens, label = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rows = [json.loads(l) for l in open(run + "/metrics.jsonl") if '"step_ms"' in l][warmup:]
if not rows:
    print(f"tessera-gpu {label}: no steps after the warm-up")
    sys.exit(0)
ms = sum(r["step_ms"] for r in rows)
tps = tokens * len(rows) / (ms / 1000)
mfu = rows[0]["mfu"] / rows[0]["tokens_per_s"] * tps  # MFU is proportional to tokens/s
print(f"tessera-gpu {label}: {tps:.0f} tokens/s, MFU {100 * mfu:.1f}%, "
      f"{ms / len(rows):.0f} ms/step over {len(rows)} steps")
PY
}

build/tessera train "$tmp/gpt2.toml" 2>&1 | tee "$out/tessera_gpt2.txt" | tail -8
summarize_tessera "$tmp/run" 5 $((16 * 1024)) gpt2 | tee -a "$out/tessera_gpt2.txt"
python3 bench/torch_gpt_gpu.py --steps "$steps" 2>&1 | tee "$out/torch_gpt2.txt" | tail -3

# LLaMA-style, TinyLlama-1.1B's shape: 22 layers, d_model 2048, 32 heads of 64, 4 key/value heads,
# SwiGLU d_ff 5632, vocabulary 32000, context 2048, untied head: 1,100,048,384 parameters,
# 6N + 12LHDT = 7,314,370,560 FLOPs per token. Micro-batch 8 (16384 tokens a step) without
# recompute: an estimated 45-55 GB in either program, inside one 80 GB H100. The byte shards above
# serve (token ids stay under 257; the cost does not depend on them). LLAMA_WARMUP steps (5)
# are not timed, then LLAMA_STEPS (10).
layers=22 d_model=2048 heads=32 kv_heads=4 d_ff=5632 vocab=32000 seq_len=2048
llama_mb=${LLAMA_MICRO_BATCH:-8} llama_warmup=${LLAMA_WARMUP:-5} llama_steps=${LLAMA_STEPS:-10}
cat > "$tmp/llama.toml" <<TOML
[model]
family = "llama"
n_layer = $layers
d_model = $d_model
n_head = $heads
n_kv_head = $kv_heads
d_ff = $d_ff
seq_len = $seq_len
vocab_size = $vocab
[train]
steps = $((llama_warmup + llama_steps))
micro_batch = $llama_mb
device = "cuda"
precision = "bf16"
[optim]
lr = 3e-4
warmup_steps = 5
[data]
train = "$tmp/shards"
[log]
dir = "$tmp/llama_run"
every = 1
TOML
# The device's memory in use, sampled every 0.5 s, for tessera's peak. SIGKILL at the cap:
# SIGTERM would have tessera save a 13 GB checkpoint first.
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 > "$tmp/llama_mem.txt" &
smi=$!
timeout -s KILL 150 build/tessera train "$tmp/llama.toml" 2>&1 | tee "$out/tessera_llama.txt" | tail -8
kill "$smi" 2>/dev/null
wait "$smi" 2>/dev/null
summarize_tessera "$tmp/llama_run" "$llama_warmup" $((llama_mb * seq_len)) llama | tee -a "$out/tessera_llama.txt"
echo "tessera-gpu llama: peak device memory used $(sort -n "$tmp/llama_mem.txt" | tail -1) MiB" |
  tee -a "$out/tessera_llama.txt"
rm -f "$tmp/llama_run/model.h5"  # 4.4 GB of fp32 weights
PYTHONUNBUFFERED=1 timeout 210 python3 bench/torch_llama_gpu.py --layers $layers --d-model $d_model \
  --heads $heads --kv-heads $kv_heads --d-ff $d_ff --vocab $vocab --seq-len $seq_len \
  --micro-batch "$llama_mb" --warmup "$llama_warmup" --steps "$llama_steps" 2>&1 |
  tee "$out/torch_llama.txt" | tail -3
