# Sourced by the dist, e2e and reference test scripts: what tests/scratch.sh gives (mpirun as
# root, a scratch directory as the current one, the fortune corpus), plus byte-level shards of
# the corpus's English part in tr/ (training) and va/ (validation), PY (an interpreter with
# h5py and numpy), and tiny.toml: a 4-layer model trained on tr/ for 20 steps, logging every
# step; same_weights A B (the final weights of run directories A and B are bitwise equal). Needs
# TESSERA (an absolute path) and SRC set.
source "$SRC/tests/scratch.sh"
"$TESSERA" prepare --tokenizer byte --input corpus/train/en.txt --out tr >/dev/null
"$TESSERA" prepare --tokenizer byte --input corpus/valid/en.txt --out va >/dev/null
PY=/usr/bin/python3
"$PY" -c "import h5py, numpy" 2>/dev/null || PY=python3
cat > tiny.toml <<TOML
[model]
n_layer = 4
d_model = 32
n_head = 4
seq_len = 16
[train]
steps = 20
micro_batch = 2
global_batch = 8
threads = 1
[data]
train = "tr"
[log]
every = 1
TOML
same_weights() {
  "$PY" - "$1/model.h5" "$2/model.h5" <<'PYEOF'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r")["model"], h5py.File(sys.argv[2], "r")["model"]
assert set(a) == set(b), "different tensors"
bad = [n for n in a if not np.array_equal(np.asarray(a[n]), np.asarray(b[n]))]
assert not bad, f"differ: {bad[:5]}"
PYEOF
}
