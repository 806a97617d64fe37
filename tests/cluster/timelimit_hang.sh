#!/usr/bin/env bash
# A time limit and a hang on a real Slurm cluster (2 nodes x 2 ranks, tp 2 x dp 2):
#  1. Time limit: examples/slurm/train.sbatch with a one-minute limit and --signal=B:USR1@50
#     (the signal goes to the batch script, which hands it to the ranks through srun). Two
#     launches in a row end "stopped by a signal" with nobody sending one; the script requeues
#     each, the next resumes from the checkpoint the previous one wrote, and the losses and the
#     checkpoint's weights and optimizer state equal those of an uninterrupted run stopped at the
#     same step, bit for bit.
#  2. Hang: a rank on node2 is stopped (SIGSTOP: alive, answering nothing) mid-run. The ranks on
#     node1 end within 60 s, each naming the rank on node2 it waited for, and the stopped one is
#     named with its node and pid as silent; the launch fails,
#     the script requeues the job and the next launch resumes from the last complete checkpoint.
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
dropout = 0.1
[train]
steps = 100000
micro_batch = 2
global_batch = 8
threads = 1
collective_timeout_s = 8
[parallel]
tp = 2
[checkpoint]
every = 4
[data]
train = "tr"
[log]
every = 1
TOML
submit() {  # submit RUN_DIR OUT [sbatch options]: the batch script on 2 nodes x 2 tasks
  local dir=$1 out=$2
  shift 2
  RUN_DIR=$dir sbatch --parsable -N2 --ntasks-per-node=2 "${SBATCH_CPU[@]}" "$@" -o "$out" \
    "$SRC/examples/slurm/train.sbatch" run.toml
}

# 1. Two time limits in a row.
job=$(submit runs/limited limited.out --time=1 --signal=B:USR1@50)
requeued_twice() { [ "$(grep -c 'stopped before its last step; requeueing job' limited.out 2>/dev/null)" -ge 2 ]; }
wait_for 200 "two launches stopped by the time limit's signal" events_at_least runs/limited end 2
wait_for 30 "the batch script requeueing the second time" requeued_twice
scancel "$job"
wait_for 60 "the job ending after scancel" job_gone "$job"
ends=$(grep '"event":"end"' runs/limited/launches.jsonl | head -n 2)
[ "$(grep -c '"how":"stopped by a signal"' <<<"$ends")" -eq 2 ] || fail "the first two launches did not stop on the signal: $ends"
grep -q "tessera: SIGUSR1: passed to the ranks" limited.out || { cat limited.out; fail "the batch script was not signalled"; }
first=$(sed -n 's/.*"how":"stopped by a signal","step":\([0-9]*\).*/\1/p' <<<"$ends" | head -n 1)
second=$(sed -n 's/.*"how":"stopped by a signal","step":\([0-9]*\).*/\1/p' <<<"$ends" | tail -n 1)
[ -n "$first" ] && [ -n "$second" ] && [ "$second" -gt "$first" ] || fail "launch end steps $first, $second: $ends"
grep '"event":"start"' runs/limited/launches.jsonl | sed -n 2p | grep -q "\"resumed_from\":\"runs/limited/checkpoints/step_$(printf %08d "$first")\"" ||
  fail "launch 2 did not resume from step $first: $(cat runs/limited/launches.jsonl)"
echo "time limit: launch 1 stopped after step $first, launch 2 after step $second"
# The same run uninterrupted (plain mpirun, the same layout) up to the second stop.
mpirun --oversubscribe -np 4 "$TESSERA" train run.toml --set train.stop_at="$second" --set log.dir='"runs/straight"' \
  >straight.out 2>&1 || { cat straight.out; fail "the uninterrupted run"; }
step_dir=step_$(printf %08d "$second")
"$PY" - runs/straight runs/limited "$second" "$step_dir" <<'PY' || fail "the time-limited run differs from the uninterrupted one"
import json, sys, h5py, numpy as np
a, b, last, step_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def losses(run):
    out = {}
    for line in open(f"{run}/metrics.jsonl"):
        r = json.loads(line)
        if "loss" in r and r["step"] <= last:
            out[r["step"]] = r["loss"]
    return out
la, lb = losses(a), losses(b)
assert sorted(la) == sorted(lb) == list(range(1, last + 1)), (len(la), len(lb))
bad = [s for s in la if la[s] != lb[s]]
assert not bad, f"losses differ at steps {bad[:5]}"
with h5py.File(f"{a}/checkpoints/{step_dir}/index.h5") as fa, h5py.File(f"{b}/checkpoints/{step_dir}/index.h5") as fb:
    names = []
    fa.visit(lambda n: names.append(n) if isinstance(fa[n], h5py.Dataset) and n.split("/")[0] in ("model", "optim") else None)
    assert names, "no tensors in the index"
    bad = [n for n in names if not np.array_equal(fa[n][...], fb[n][...])]
    assert not bad, f"differ: {bad[:5]}"
print(f"{last} losses and {len(names)} tensors bit for bit")
PY

# 2. A rank stopped mid-run.
job=$(NODE_LOSS_WAIT=2 submit runs/hang hang.out)  # a failed launch is requeued after 2 s, not 30
wait_for 120 "the job stepping past its step-8 checkpoint" steps_at_least runs/hang 10
victim=$(sed -n 's/^pid=//p' runs/hang/flight/rank_3.heartbeat)
[ -n "$victim" ] || fail "rank 3 published no heartbeat"
start=$SECONDS
kill -STOP "$victim"
wait_for 60 "the ranks on node1 ending after rank 3 stopped" no_ranks_on node1
echo "hang: the ranks on node1 ended $((SECONDS - start)) s after rank 3 (pid $victim) was stopped"
# Each rank on node1 reports its own timeout; the one whose peer is rank 3 names it as silent
# (rank 0's peer, rank 2, is named as alive and waiting on rank 3's tensor-parallel all-reduce).
for r in 0 1; do
  grep -q "^tessera: error: collective timeout: rank $r (node1) waited .* not arrived: rank [23] (node2, pid " hang.out ||
    { cat hang.out; fail "rank $r did not report which rank on node2 had not arrived"; }
done
grep "^tessera: error: collective timeout: rank [0-2] " hang.out | grep -q "rank 3 (node2, pid $victim): no heartbeat for" ||
  { cat hang.out; fail "no report named the stopped rank 3 (pid $victim) as silent"; }
wait_for 120 "the requeued launch starting" events_at_least runs/hang start 2
wait_for 60 "the requeued launch stepping" steps_at_least runs/hang "$(($(logged_steps runs/hang) + 1))"
kill -0 "$victim" 2>/dev/null && fail "the stopped rank (pid $victim) outlived its launch"
grep -q "requeueing job $job to resume from the last complete checkpoint" hang.out || { cat hang.out; fail "not requeued after the hang"; }
grep '"event":"start"' runs/hang/launches.jsonl | tail -n 1 | grep -q '"resumed_from":"runs/hang/checkpoints/step_000000[0-9]*"' ||
  fail "the requeued launch did not resume from a checkpoint: $(cat runs/hang/launches.jsonl)"
scancel "$job"
wait_for 60 "the job ending after scancel" job_gone "$job"
echo "cluster time limit and hang: two time-limit stops resumed bit for bit; a stopped rank named and the job requeued"
