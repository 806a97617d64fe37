#!/usr/bin/env bash
# ctest driver for tensorboard_check.py: makes (once) the venv .venv-tensorboard at the
# repository root with the tensorboard package (its event reader, no TensorFlow), trains a tiny
# model with log.tensorboard = true, and reads the event file back with TensorBoard's own
# EventAccumulator. Exit 77 (skipped) when the venv cannot be made.
# usage: run_tensorboard_check.sh TESSERA SRC
set -euo pipefail
TESSERA=$1 SRC=$2
VENV=$SRC/.venv-tensorboard
if [[ ! -x $VENV/bin/python ]] ||
   ! "$VENV/bin/python" -c "import tensorboard.backend.event_processing.event_accumulator" 2>/dev/null; then
  if ! /usr/bin/python3 -m venv "$VENV" >/dev/null 2>&1 ||
     ! "$VENV/bin/pip" install -q tensorboard >/dev/null 2>&1; then
    echo "SKIPPED: cannot make $VENV with the tensorboard package (python3-venv, or PyPI, missing)"
    exit 77
  fi
fi
source "$SRC/tests/scratch.sh"  # scratch dir (cwd), corpus/
"$TESSERA" prepare --tokenizer byte --input corpus/train/en.txt --out tr >/dev/null
"$TESSERA" prepare --tokenizer byte --input corpus/valid/en.txt --out va >/dev/null
cat > run.toml <<'TOML'
[model]
n_layer = 1
d_model = 32
n_head = 2
seq_len = 32
[train]
steps = 12
micro_batch = 4
threads = 1
eval_every = 6
eval_batches = 2
[data]
train = "tr"
valid = "va"
[log]
dir = "run"
every = 3
tensorboard = true
TOML
"$TESSERA" train run.toml >/dev/null
"$VENV/bin/python" "$SRC/tests/reference/tensorboard_check.py" run
