#!/usr/bin/env bash
# What a GPU session runs first, in one job: every CUDA op against its CPU twin, then GPT-2
# 124M (context 1024, bf16) throughput and MFU for tessera and PyTorch (torch.compile, flash
# attention) in the same run. Expects a CUDA build in build/ (scripts/build on a machine with
# nvcc); OUT_DIR (default $OUT or /tmp) receives the logs.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT_DIR:-${OUT:-/tmp}}
steps=${STEPS:-20}
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
build/tessera train "$tmp/gpt2.toml" 2>&1 | tee "$out/tessera_gpt2.txt" | tail -8
python3 bench/torch_gpt_gpu.py --steps "$steps" 2>&1 | tee "$out/torch_gpt2.txt" | tail -3
