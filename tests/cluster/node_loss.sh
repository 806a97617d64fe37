#!/usr/bin/env bash
# Losing a node on a real Slurm cluster: a job of 2 nodes x 2 ranks (tp 2 inside each node,
# dp 2 across) loses node2 mid-run (its link taken down, everything on it killed). The ranks on
# node1 end within 60 s, each with a line naming the vanished ranks and node (the collective
# watchdog: their heartbeats went stale); train.sbatch requeues the job; the next allocation
# runs on the one node left (sbatch -N 1-2), data parallelism shrunk to 1, resumes from the
# last complete checkpoint and finishes with the losses and weights of an uninterrupted run
# (fp64, 1e-11 per tensor: same samples at every step, only the reduction order differs).
set -euo pipefail
TESSERA=$(realpath "$1")
SRC=$(realpath "$2")
source "$SRC/tests/cluster/lib.sh"
cat > run.toml <<'TOML'
[model]
family = "llama"
n_layer = 2
d_model = 32
n_head = 4
n_kv_head = 2
seq_len = 16
[train]
steps = 40
micro_batch = 2
global_batch = 8
threads = 1
precision = "fp64"
collective_timeout_s = 5
[parallel]
tp = 2
[checkpoint]
every = 8
[data]
train = "tr"
[log]
every = 1
TOML
"$TESSERA" train run.toml --set parallel.tp=1 --set log.dir='"runs/ref"' > ref.out 2>&1 || { cat ref.out; fail "single-process run"; }

job=$(RUN_DIR=runs/lossy sbatch --parsable -N1-2 --ntasks-per-node=2 "${SBATCH_CPU[@]}" -o job.out \
  "$SRC/examples/slurm/train.sbatch" run.toml)
SHOW_ON_FAIL=job.out JOBS_ON_FAIL=$job
wait_for 120 "the job stepping on both nodes past its step-8 checkpoint" steps_at_least runs/lossy 12
grep -q '"rank_hosts":\["node1","node1","node2","node2"\]' runs/lossy/launches.jsonl || fail "the first launch is not on both nodes: $(cat runs/lossy/launches.jsonl)"
start=$SECONDS
"$CLUSTER" kill-node 2
wait_for 60 "the ranks on node1 ending after node2 vanished" no_ranks_on node1
echo "ranks on node1 ended $((SECONDS - start)) s after node2 was lost"
for r in 0 1; do
  grep "^tessera: error: collective timeout: rank $r (node1)" job.out | grep -q "rank [23] (node2, pid [0-9]*): no heartbeat" ||
    { cat job.out; fail "rank $r did not name a vanished rank on node2"; }
done
wait_for 240 "the requeued job finishing on the node left" job_gone "$job"
grep -q "requeueing job $job to resume from the last complete checkpoint" job.out || { cat job.out; fail "not requeued after the node loss"; }
tail -n 1 runs/lossy/launches.jsonl | grep -q '"how":"finished"' || { cat job.out; fail "the requeued job did not finish"; }
second=$(grep '"event":"start"' runs/lossy/launches.jsonl | tail -n 1)
echo "$second" | grep -q '"rank_hosts":\["node1","node1"\]' && echo "$second" | grep -q '"layout":"world 2 = dp 1 x pp 1 x tp 2' ||
  fail "the last launch did not run on node1 alone with dp 1: $second"
echo "$second" | grep -q '"resumed_from":"runs/lossy/checkpoints/step_000000[0-9]*"' || fail "the last launch did not resume from a checkpoint: $second"
"$PY" "$SRC/tests/dist/compare.py" runs/ref runs/lossy 1e-11 --per-tensor --expect-steps 40 ||
  fail "the run that lost a node differs from the uninterrupted one"
echo "cluster node loss: survivors ended, job requeued onto one node, resumed with dp shrunk, same run"
