#!/usr/bin/env bash
# Preemption on a real Slurm cluster (2 nodes x 2 ranks): examples/slurm/train.sbatch is sent
# SIGUSR1 twice mid-run (`scancel --signal=USR1`, as Slurm's --signal does before a time limit
# or a preemption); each time the ranks checkpoint, the script requeues the job, and the next
# allocation resumes. The finished run's losses and final weights equal an uninterrupted run's
# bit for bit. Then a job whose ranks are all killed without warning (SIGKILL; Slurm's own
# scancel sends SIGTERM first, which checkpoints like SIGUSR1) is resubmitted and resumes from its last complete checkpoint, again bit for bit.
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
steps_at_least() { [ "$(logged_steps "$1")" -ge "$2" ]; }
events_at_least() { [ "$(launch_events "$1" "$2")" -ge "$3" ]; }

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

# Killed without warning: every rank gets SIGKILL at once; the script sees srun fail and does
# not requeue.
killed=$(submit runs/killed killed.out)
wait_for 120 "the killed job passing its step-16 checkpoint" test -d runs/killed/checkpoints/step_00000016
wait_for 60 "the killed job stepping past the checkpoint" steps_at_least runs/killed 19
kill_ranks
wait_for 60 "the killed job ending" job_gone "$killed"
[ "$(launch_events runs/killed end)" -eq 0 ] || { cat killed.out runs/killed/launches.jsonl; fail "a killed launch wrote an end record"; }
last=$(ls runs/killed/checkpoints | sort | tail -n 1)
resumed=$(submit runs/killed killed2.out)
wait_for 240 "the resubmitted job finishing" job_gone "$resumed"
grep -q "resuming from runs/killed/checkpoints/$last" killed2.out || { cat killed2.out; fail "not resumed from $last"; }
"$PY" "$SRC/tests/dist/compare.py" runs/straight runs/killed 0 --per-tensor --expect-steps 48 ||
  fail "the killed and resubmitted run differs from the uninterrupted one"
echo "cluster preemption: two SIGUSR1 preemptions and a kill + resubmit, bit for bit"
