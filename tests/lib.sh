# Sourced by the dist, e2e and reference test scripts: mpirun may run as root, a scratch
# directory removed on exit (the current directory from here on), byte-level shards of the
# fortune corpus's English part in tr/ (training) and va/ (validation), PY (an interpreter with
# h5py and numpy), and tiny.toml: a 4-layer model trained on tr/ for 20 steps, logging every
# step. Needs TESSERA (an absolute path) and SRC set.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
"$SRC/scripts/build-fortune-corpus" corpus >/dev/null
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
