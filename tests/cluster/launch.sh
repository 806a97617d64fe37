#!/usr/bin/env bash
# Multi-node launches on a real Slurm cluster (2 nodes x 2 ranks, MPI over TCP between the
# nodes' namespaces), each equal to the single-process run of the same config (fp64, 1e-11 per
# tensor): examples/slurm/train.sbatch under sbatch; srun launching the ranks directly
# (--mpi=pmix, what Debian's Slurm and Open MPI share); mpirun inside an allocation. The launch
# record names every rank's node, and the tensor-parallel pairs sit inside a node.
set -euo pipefail
TESSERA=$(realpath "$1")
SRC=$(realpath "$2")
source "$SRC/tests/cluster/lib.sh"
cat > run.toml <<'TOML'
[model]
family = "llama"
n_layer = 4
d_model = 32
n_head = 4
n_kv_head = 2
seq_len = 16
[train]
steps = 12
micro_batch = 2
global_batch = 8
threads = 1
precision = "fp64"
[parallel]
tp = 2
[data]
train = "tr"
[log]
every = 1
TOML
"$TESSERA" train run.toml --set parallel.tp=1 --set log.dir='"runs/ref"' > ref.out 2>&1 || { cat ref.out; fail "single-process run"; }
check_run() {
  local name=$1
  "$PY" "$SRC/tests/dist/compare.py" runs/ref "runs/$name" 1e-11 --per-tensor --expect-steps 12 || fail "$name differs from one process"
  # Ranks 0,1 (one tp pair) on node1, ranks 2,3 on node2.
  grep -q '"rank_hosts":\["node1","node1","node2","node2"\]' "runs/$name/launches.jsonl" ||
    fail "$name: the launch record does not place ranks 0-1 on node1 and 2-3 on node2: $(cat "runs/$name/launches.jsonl")"
}

# 1. The batch script, as a user submits it.
RUN_DIR=runs/sbatch sbatch --wait -N2 --ntasks-per-node=2 "${SBATCH_CPU[@]}" -o sbatch.out \
  "$SRC/examples/slurm/train.sbatch" run.toml || { cat sbatch.out; fail "sbatch train.sbatch"; }
grep -q "the run finished" sbatch.out || { cat sbatch.out; fail "train.sbatch did not finish the run"; }
check_run sbatch

# 2. srun launching the ranks itself.
srun --mpi=pmix -N2 --ntasks-per-node=2 --cpus-per-task=1 "$TESSERA" train run.toml \
  --set log.dir='"runs/srun"' > srun.out 2>&1 || { cat srun.out; fail "srun --mpi=pmix"; }
check_run srun

# 3. mpirun inside an allocation (Open MPI starts its daemons through Slurm).
sbatch --wait -N2 --ntasks-per-node=2 --cpus-per-task=1 -o mpirun.out \
  --wrap "mpirun --allow-run-as-root $TESSERA train run.toml --set log.dir='\"runs/mpirun\"'" ||
  { cat mpirun.out; fail "mpirun inside sbatch"; }
check_run mpirun

# A layout whose tensor-parallel group would straddle nodes stops before the first step when
# parallel.node_local_tp asks for node-local tensor parallelism (tp 4 > 2 tasks per node).
set +e
srun --mpi=pmix -N2 --ntasks-per-node=2 --cpus-per-task=1 "$TESSERA" train run.toml --set parallel.tp=4 \
  --set model.n_kv_head=4 --set parallel.node_local_tp=true --set log.dir='"runs/straddle"' > straddle.out 2>&1
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "tp 4 across 2 nodes with node_local_tp ran"
grep -q "error: parallel.node_local_tp: tensor-parallel group of ranks 0-3 spans nodes node1, node2" straddle.out ||
  { cat straddle.out; fail "no one-line error for a straddling tp group"; }
[ ! -e runs/straddle/metrics.jsonl ] || ! grep -q '"loss"' runs/straddle/metrics.jsonl || fail "a straddling layout trained a step"
echo "cluster launches: sbatch, srun --mpi=pmix and mpirun in an allocation equal one process"
