# Sourced by the dist, e2e and reference test scripts: what tests/scratch.sh gives (mpirun as
# root, a scratch directory as the current one, the fortune corpus), plus byte-level shards of
# the corpus's English part in tr/ (training) and va/ (validation), PY (an interpreter with
# h5py and numpy), and tiny.toml: a 4-layer model trained on tr/ for 20 steps, logging every
# step. Needs TESSERA (an absolute path) and SRC set.
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
