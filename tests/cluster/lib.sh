# Sourced by the cluster tests: skips (exit 77, with the reason) where no Slurm cluster can be
# made here; otherwise what tests/lib.sh gives (scratch directory, corpus, byte shards in tr/)
# and a cluster of CLUSTER_NODES (default 2) nodes that is torn down on exit, success or not,
# after which the test fails if anything of it is left (namespaces, bridge, state, daemons).
# Needs TESSERA and SRC. Slurm's commands reach the cluster through SLURM_CONF from here on.
CLUSTER=$SRC/scripts/cluster
export CLUSTER_NAME=tstcl CLUSTER_SUBNET=10.78.0
if ! why=$("$CLUSTER" check 2>&1); then
  echo "SKIPPED: no local Slurm cluster here: $why"
  exit 77
fi
source "$SRC/tests/lib.sh"
export TESSERA

# Fails the test (exit 1) when the cluster left anything behind.
cluster_leftovers() {
  local left=""
  ip netns list | grep -q "^$CLUSTER_NAME-" && left+=" namespaces: $(ip netns list | grep "^$CLUSTER_NAME-" | tr '\n' ' ')"
  ip link show "$CLUSTER_NAME-br" >/dev/null 2>&1 && left+=" bridge $CLUSTER_NAME-br"
  ip -o link show | grep -q ": $CLUSTER_NAME-v" && left+=" links: $(ip -o link show | grep -o "$CLUSTER_NAME-v[0-9]*" | tr '\n' ' ')"
  [ -e "/run/$CLUSTER_NAME-cluster" ] && left+=" /run/$CLUSTER_NAME-cluster"
  pgrep -f "/run/$CLUSTER_NAME-cluster/" >/dev/null && left+=" processes: $(pgrep -f "/run/$CLUSTER_NAME-cluster/" | tr '\n' ' ')"
  [ -z "$left" ] || { echo "FAIL: the cluster left behind:$left"; return 1; }
}
cluster_teardown() {
  local rc=$?
  "$CLUSTER" down >/dev/null 2>&1 || true
  cluster_leftovers || rc=1
  rm -rf "$WORK"
  exit "$rc"
}
trap cluster_teardown EXIT
"$CLUSTER" up "${CLUSTER_NODES:-2}" >cluster-up.out 2>&1 || { cat cluster-up.out; exit 1; }
eval "$("$CLUSTER" env)"

# fail MESSAGE: ends the test; first shows the files named in SHOW_ON_FAIL and, under Slurm,
# the state of the jobs in JOBS_ON_FAIL and of the nodes.
fail() {
  echo "FAIL: $*"
  local f j
  for f in ${SHOW_ON_FAIL:-}; do echo "== $f"; cat "$f" 2>/dev/null; done
  for j in ${JOBS_ON_FAIL:-}; do scontrol show job "$j" 2>&1; done
  [ -z "${JOBS_ON_FAIL:-}" ] || sinfo -N 2>&1
  exit 1
}

# wait_for SECONDS DESCRIPTION CMD...: polls CMD every 0.2 s; fails the test after SECONDS.
wait_for() {
  local seconds=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + seconds))
  until "$@"; do
    ((SECONDS < deadline)) || fail "$what: not within ${seconds}s"
    sleep 0.2
  done
}

# logged_steps RUN_DIR: how many step records its metrics.jsonl holds.
logged_steps() { local n; n=$(grep -c '"loss"' "$1/metrics.jsonl" 2>/dev/null); echo "${n:-0}"; }
# launch_events RUN_DIR EVENT: how many launch records of that event it holds.
launch_events() { local n; n=$(grep -c "\"event\":\"$2\"" "$1/launches.jsonl" 2>/dev/null); echo "${n:-0}"; }
# kill_ranks: SIGKILL, at once and without warning, every tessera process on the cluster's nodes
# (what an OOM killer or a crashed node does; Slurm's own cancel sends SIGTERM first).
kill_ranks() {
  local ns pid
  for ns in $(ip netns list | awk -v p="$CLUSTER_NAME-node" 'index($1, p) == 1 {print $1}'); do
    for pid in $(ip netns pids "$ns"); do
      [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = tessera ] && kill -KILL "$pid" 2>/dev/null || true
    done
  done
}
steps_at_least() { [ "$(logged_steps "$1")" -ge "$2" ]; }             # RUN_DIR N
events_at_least() { [ "$(launch_events "$1" "$2")" -ge "$3" ]; }      # RUN_DIR EVENT N
# no_ranks_on NODE: no tessera process is left on that node (e.g. node1).
no_ranks_on() {
  local pid
  for pid in $(ip netns pids "$CLUSTER_NAME-$1"); do
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = tessera ] && return 1
  done
  return 0
}
job_gone() { [ -z "$(squeue -h -j "$1" 2>/dev/null)" ]; }

# The batch options every test submits train.sbatch with: CPU ranks, a time limit far beyond the
# test so the script's own USR1@300 never fires by itself.
SBATCH_CPU=(--gpus-per-node=0 --cpus-per-task=1 --time=120)
