#!/usr/bin/env bash
# examples/slurm/train.sbatch as Slurm runs it, with srun and scontrol stood in for by scripts
# (srun runs the command once, scontrol records what it was asked): a launch stopped before its
# last step requeues the job, the requeued launch resumes from the checkpoint and finishes
# without requeueing, and a launch that fails is not requeued.
set -euo pipefail
TESSERA=$1
SRC=$2
source "$SRC/tests/scratch.sh"  # scratch dir (cwd), corpus/, expect_exit2
"$TESSERA" prepare --tokenizer byte --input corpus/train/en.txt --out tr >/dev/null
mkdir bin
cat > bin/srun <<'SH'
#!/usr/bin/env bash
while [ "${1:-}" != "${1#--}" ]; do shift; done  # srun's own options
exec "$@"
SH
cat > bin/scontrol <<'SH'
#!/usr/bin/env bash
echo "$*" >> scontrol.calls
SH
chmod +x bin/srun bin/scontrol
export PATH="$PWD/bin:$PATH" SLURM_JOB_ID=4242 SLURM_JOB_NODELIST="gpu[01-02]" TESSERA
cat > run.toml <<'TOML'
[model]
n_layer = 1
d_model = 32
n_head = 2
seq_len = 32
[train]
steps = 8
micro_batch = 4
threads = 1
[data]
train = "tr"
[log]
dir = "runs/slurm"
every = 2
TOML
sbatch_script="$SRC/examples/slurm/train.sbatch"

# First allocation: stopped at step 4 (as by the time-limit signal) -> requeued.
bash "$sbatch_script" run.toml --set train.stop_at=4 > job1.out 2>&1 || { cat job1.out; exit 1; }
grep -q "requeueing job 4242" job1.out || { echo "FAIL: no requeue after a stop"; cat job1.out; exit 1; }
[ "$(cat scontrol.calls)" = "requeue 4242" ] || { echo "FAIL: scontrol got: $(cat scontrol.calls)"; exit 1; }
test -d runs/slurm/checkpoints/step_00000004

# The requeued job: resumes from step 4, finishes, and is not requeued again.
bash "$sbatch_script" run.toml > job2.out 2>&1 || { cat job2.out; exit 1; }
grep -q "the run finished: runs/slurm/README.md" job2.out || { echo "FAIL: second launch"; cat job2.out; exit 1; }
grep -q "resuming from runs/slurm/checkpoints/step_00000004" job2.out
[ "$(wc -l < scontrol.calls)" -eq 1 ] || { echo "FAIL: requeued after finishing"; exit 1; }
grep -q '| 4 (runs/slurm/checkpoints/step_00000004) | finished at step 8' runs/slurm/README.md
grep -q '(Slurm job 4242, nodes gpu\[01-02\])' runs/slurm/README.md

# RUN_DIR from the environment; a failing launch (bad key) is not requeued.
set +e
RUN_DIR=runs/other bash "$sbatch_script" run.toml --set train.stepz=3 > job3.out 2>&1
rc=$?
set -e
[ "$rc" -eq 2 ] || { echo "FAIL: a failed launch exited $rc, wanted 2"; cat job3.out; exit 1; }
grep -q "not requeued" job3.out && grep -q "runs/other" job3.out
[ "$(wc -l < scontrol.calls)" -eq 1 ] || { echo "FAIL: a failed launch was requeued"; exit 1; }
# A launch that loses a rank (exit 3, as the collective watchdog ends it) is requeued, until
# three launches in a row have failed without ending.
cat > bin/lost-rank <<'SH'
#!/usr/bin/env bash
mkdir -p runs/lost
echo '{"event":"start","step":0}' >> runs/lost/launches.jsonl
exit 3
SH
chmod +x bin/lost-rank
: > scontrol.calls
for n in 1 2; do
  TESSERA=bin/lost-rank RUN_DIR=runs/lost bash "$sbatch_script" run.toml > lost$n.out 2>&1 || { cat lost$n.out; exit 1; }
  grep -q "requeueing job 4242 to resume from the last complete checkpoint" lost$n.out || { echo "FAIL: lost rank $n not requeued"; cat lost$n.out; exit 1; }
done
set +e
TESSERA=bin/lost-rank RUN_DIR=runs/lost bash "$sbatch_script" run.toml > lost3.out 2>&1
rc=$?
set -e
[ "$rc" -eq 3 ] && grep -q "failed launch 3 in a row; not requeued" lost3.out || { echo "FAIL: third failure ($rc)"; cat lost3.out; exit 1; }
[ "$(wc -l < scontrol.calls)" -eq 2 ] || { echo "FAIL: $(wc -l < scontrol.calls) requeues after lost ranks, wanted 2"; exit 1; }
echo "e2e ok"
