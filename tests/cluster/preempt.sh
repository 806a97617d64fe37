#!/usr/bin/env bash
# Preemption on a real Slurm cluster (2 nodes x 2 ranks): examples/slurm/train.sbatch is sent
# SIGUSR1 twice mid-run (`scancel --signal=USR1`, as Slurm's --signal does before a time limit
# or a preemption); each time the ranks checkpoint, the script requeues the job, and the next
# allocation resumes. The finished run's losses and final weights equal an uninterrupted run's
# bit for bit. Then a job whose ranks are all killed without warning (SIGKILL) is requeued by
# the script and resumes from its last complete checkpoint, and a job ended by `scancel` resumes
# from its last complete checkpoint when resubmitted, each again bit for bit.
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
steps = 48
micro_batch = 2
global_batch = 8
threads = 1
[parallel]
tp = 2
[checkpoint]
every = 8
[data]
train = "tr"
[log]
every = 1
TOML
submit() {  # submit RUN_DIR OUT: the batch script on 2 nodes x 2 tasks; prints the job id
  RUN_DIR=$1 sbatch --parsable -N2 --ntasks-per-node=2 "${SBATCH_CPU[@]}" -o "$2" \
    "$SRC/examples/slurm/train.sbatch" run.toml
}

straight=$(submit runs/straight straight.out)
preempted=$(submit runs/preempted preempted.out)

# Two preemptions: each after a few steps of a launch, the second in the requeued job.
for n in 1 2; do
  wait_for 120 "launch $n of the preempted job stepping" steps_at_least runs/preempted $((n * 14))
  scancel --signal=USR1 "$preempted"
  wait_for 60 "launch $n ending after SIGUSR1" events_at_least runs/preempted end "$n"
  grep '"event":"end"' runs/preempted/launches.jsonl | sed -n "${n}p" | grep -q '"how":"stopped by a signal"' ||
    fail "launch $n did not stop on the signal: $(cat runs/preempted/launches.jsonl)"
done
wait_for 240 "the preempted job finishing" job_gone "$preempted"
wait_for 240 "the uninterrupted job finishing" job_gone "$straight"
[ "$(launch_events runs/preempted start)" -eq 3 ] || fail "expected 3 launches: $(cat runs/preempted/launches.jsonl)"
tail -n 1 runs/preempted/launches.jsonl | grep -q '"how":"finished"' || { cat preempted.out; fail "the preempted run did not finish"; }
[ "$(grep -c 'requeueing job' preempted.out)" -eq 2 ] || { cat preempted.out; fail "not requeued twice"; }
[ "$(scontrol show job "$preempted" | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p')" -eq 2 ] || fail "Slurm did not count 2 restarts"
"$PY" "$SRC/tests/dist/compare.py" runs/straight runs/preempted 0 --per-tensor --expect-steps 48 ||
  fail "the twice-preempted run differs from the uninterrupted one"

# Killed without warning: every rank gets SIGKILL at once. srun fails (exit 137: not a user
# mistake), so the script requeues the job by itself, and the next launch resumes from the last
# complete checkpoint, losing only the steps since.
killed=$(submit runs/killed killed.out)
wait_for 120 "the killed job passing its step-16 checkpoint" test -d runs/killed/checkpoints/step_00000016
wait_for 60 "the killed job stepping past the checkpoint" steps_at_least runs/killed 19
kill_ranks
# The newest complete checkpoint at the kill (an unfinished one is named *.partial).
last=$(cd runs/killed/checkpoints && ls -d step_???????? | sort | tail -n 1)
wait_for 240 "the killed job requeued and finishing" job_gone "$killed"
grep -q "the launch failed (exit [0-9]*; 1 failed launch(es) in a row); requeueing job $killed " killed.out ||
  { cat killed.out; fail "the killed launch was not requeued"; }
grep -q "resuming from runs/killed/checkpoints/$last " killed.out || { cat killed.out; fail "not resumed from $last"; }
[ "$(launch_events runs/killed start)" -eq 2 ] && [ "$(launch_events runs/killed end)" -eq 1 ] ||
  { cat runs/killed/launches.jsonl; fail "expected a killed launch without an end record, then one that finished"; }
tail -n 1 runs/killed/launches.jsonl | grep -q '"how":"finished"' || { cat killed.out; fail "the requeued run did not finish"; }
"$PY" "$SRC/tests/dist/compare.py" runs/straight runs/killed 0 --per-tensor --expect-steps 48 ||
  fail "the killed and requeued run differs from the uninterrupted one"

# Cancelled: `scancel` without a signal ends the job for good (SIGTERM to the script and the
# ranks, SIGKILL after KillWait; not requeued). Resubmitted by hand, the run resumes from its
# newest complete checkpoint.
cancelled=$(submit runs/cancelled cancelled.out)
wait_for 120 "the cancelled job stepping past its step-8 checkpoint" steps_at_least runs/cancelled 10
scancel "$cancelled"
wait_for 60 "the cancelled job ending" job_gone "$cancelled"
last=$(cd runs/cancelled/checkpoints && ls -d step_???????? | sort | tail -n 1)
resumed=$(submit runs/cancelled cancelled2.out)
wait_for 240 "the resubmitted job finishing" job_gone "$resumed"
grep -q "resuming from runs/cancelled/checkpoints/$last " cancelled2.out || { cat cancelled.out cancelled2.out; fail "not resumed from $last"; }
"$PY" "$SRC/tests/dist/compare.py" runs/straight runs/cancelled 0 --per-tensor --expect-steps 48 ||
  fail "the cancelled and resubmitted run differs from the uninterrupted one"
echo "cluster preemption: two SIGUSR1 preemptions, a kill + requeue and a cancel + resubmit, bit for bit"
