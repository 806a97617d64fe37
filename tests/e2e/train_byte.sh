#!/usr/bin/env bash
# End to end, as a user runs it: build the fortune corpus, prepare byte shards, train a tiny
# GPT, and require its held-out loss to fall below the byte-unigram entropy of the held-out
# text (computed here). Also checks eval/generate and the one-line errors (exit code 2).
set -euo pipefail
TESSERA=$1
SRC=$2
source "$SRC/tests/scratch.sh"  # scratch dir (cwd), corpus/, expect_exit2
"$TESSERA" prepare --tokenizer byte --input corpus/train/en.txt corpus/train/de.txt --out tr >/dev/null
"$TESSERA" prepare --tokenizer byte --input corpus/valid/en.txt corpus/valid/de.txt --out va >/dev/null

# Byte-unigram entropy (nats) of the held-out token stream: bytes plus one end-of-document
# token per document, exactly what the model is scored on.
entropy=$(python3 - <<'PY'
import math, collections
counts = collections.Counter()
for path in ["corpus/valid/en.txt", "corpus/valid/de.txt"]:
    docs = [d.strip("\n") for d in open(path, encoding="utf-8").read().split("\n%\n")]
    for d in docs:
        if not d.strip() or d.strip() == "%":
            continue
        counts.update(d.encode("utf-8"))
        counts[256] += 1
n = sum(counts.values())
print(-sum(c / n * math.log(c / n) for c in counts.values()))
PY
)

cat > run.toml <<'TOML'
[model]
n_layer = 2
d_model = 96
n_head = 4
seq_len = 64
[train]
steps = 150
micro_batch = 8
global_batch = 16
eval_batches = 16
threads = 2
[optim]
lr = 3e-3
min_lr = 3e-4
warmup_steps = 15
[data]
train = "tr"
valid = "va"
[log]
dir = "run"
every = 50
TOML
"$TESSERA" train run.toml
val=$(grep val_loss run/metrics.jsonl | tail -1 | sed 's/.*"val_loss": \([0-9.eE+-]*\).*/\1/')
echo "held-out loss $val nats/token, byte-unigram entropy $entropy"
python3 -c "import sys; sys.exit(0 if float('$val') < float('$entropy') else 1)" ||
  { echo "FAIL: held-out loss did not fall below the unigram entropy"; exit 1; }

test -s run/config.toml && grep -q '^steps = 150' run/config.toml
lines=$(grep -c '"loss"' run/metrics.jsonl)
[ "$lines" -ge 3 ] || { echo "FAIL: metrics.jsonl has $lines step lines"; exit 1; }
for key in step loss lr grad_norm tokens_per_s mfu step_ms; do
  head -1 run/metrics.jsonl | grep -q "\"$key\"" || { echo "FAIL: metrics lack $key"; exit 1; }
done
"$TESSERA" eval --model run/model.h5 --tokens va --batches 2 | grep -q '"loss"'
"$TESSERA" generate --model run/model.h5 --prompt "The " --tokens 20 >/dev/null

# User mistakes: one line on stderr, exit code 2.
expect_exit2 "$TESSERA" train run.toml --set train.stepz=3
expect_exit2 "$TESSERA" train run.toml --set data.train=missing_dir
expect_exit2 "$TESSERA" train missing.toml
expect_exit2 "$TESSERA" eval --model missing.h5 --tokens va
head -c 1000 run/model.h5 > truncated.h5
expect_exit2 "$TESSERA" eval --model truncated.h5 --tokens va
head -c 100 tr/shard_00000.tok > tr_bad.tok && mkdir -p trbad && mv tr_bad.tok trbad/shard_00000.tok
expect_exit2 "$TESSERA" train run.toml --set data.train=trbad
echo "e2e ok"
