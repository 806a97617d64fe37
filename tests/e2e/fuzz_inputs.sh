#!/usr/bin/env bash
# Bad input never crashes: 1,100 seeded cases of mutated configs and subcommand flags
# (tests/e2e/fuzz_inputs.py), each run or refused with one line and exit 2.
# FUZZ_SEED, FUZZ_CONFIGS and FUZZ_FLAGS change the draw.
set -euo pipefail
TESSERA=$(realpath "$1")
SRC=$(realpath "$2")
source "$SRC/tests/lib.sh"
cat > base.toml <<'TOML'
[model]
family = "llama"
n_layer = 1
d_model = 16
n_head = 2
seq_len = 8
[train]
steps = 2
micro_batch = 2
threads = 1
[checkpoint]
every = 2
[data]
train = "tr"
[log]
dir = "run"
every = 1
TOML
"$TESSERA" train base.toml > fixture.out 2>&1 || { cat fixture.out; exit 1; }
"$TESSERA" export run/checkpoints/step_00000002 --format hf --out hf > /dev/null 2>&1
echo '[[256, 84, 104, 101, 32], [72, 105, 1, 2]]' > ids.json
head -n 200 corpus/train/en.txt > text.txt
"$PY" "$SRC/tests/e2e/fuzz_inputs.py" "$TESSERA" "$PWD" --seed "${FUZZ_SEED:-1}" \
  --configs "${FUZZ_CONFIGS:-700}" --flags "${FUZZ_FLAGS:-400}"
