#!/usr/bin/env bash
# Multi-rank failures end the job quickly and clearly:
#  - an impossible layout or a missing data directory fails at start on every rank with exactly
#    one error line and exit code 2;
#  - a rank killed mid-run takes the whole job down within seconds (nobody hangs in a
#    collective).
set -euo pipefail
TESSERA=$(realpath "$1")
SRC=$(realpath "$2")
source "$SRC/tests/lib.sh"
fail() { echo "FAIL: $*"; exit 1; }

# expect_error NP PATTERN --set ...: exit code 2, exactly one error line, naming PATTERN.
expect_error() {
  local np=$1 pattern=$2
  shift 2
  local rc=0
  timeout 60 mpirun --oversubscribe -np "$np" "$TESSERA" train tiny.toml "$@" >out.txt 2>&1 || rc=$?
  [ "$rc" -eq 2 ] || { cat out.txt; fail "np $np $*: exit code $rc, expected 2"; }
  local lines
  lines=$(grep -c '^tessera: error:' out.txt || true)
  [ "$lines" -eq 1 ] || { cat out.txt; fail "np $np $*: $lines error lines, expected one"; }
  grep -q "$pattern" out.txt || { cat out.txt; fail "np $np $*: the error does not mention '$pattern'"; }
  echo "ok: np $np $* -> $(grep '^tessera: error:' out.txt)"
}
expect_error 3 "world size 3 is not divisible by tp\*pp = 2" --set parallel.tp=2
expect_error 4 "n_head = 6 is not divisible by parallel.tp = 4" --set parallel.tp=4 --set model.d_model=48 --set model.n_head=6
expect_error 2 "n_layer = 4 is not divisible by parallel.pp \* parallel.virtual_stages = 8" --set parallel.pp=2 --set parallel.schedule=interleaved --set parallel.virtual_stages=4
expect_error 4 "global_batch = 6 is not divisible by train.micro_batch \* dp = 2 \* 4" --set train.global_batch=6
expect_error 2 "no-such-dir does not exist" --set data.train=no-such-dir

# A rank killed mid-run: the job must end within seconds.
cp tiny.toml "kill-$$.toml"  # a name no other job on the machine uses
timeout 120 mpirun --oversubscribe -np 4 "$TESSERA" train "kill-$$.toml" --set train.steps=1000000 \
  --set parallel.tp=2 --set parallel.pp=2 --set log.every=1000 >kill.txt 2>&1 &
launcher=$!
for _ in $(seq 300); do  # up to 60 s: slow when other tests share the cores
  grep -q '^step' kill.txt 2>/dev/null && break
  sleep 0.2
done
grep -q '^step' kill.txt || { cat kill.txt; fail "the 4-rank run never started stepping"; }
victim=$(pgrep -f "tessera train kill-$$.toml" | grep -v "^$launcher\$" | tail -1)
[ -n "$victim" ] || fail "no rank process found"
start=$(date +%s%N)
kill -9 "$victim"
rc=0
wait "$launcher" || rc=$?
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "after killing a rank the launcher exited with $rc (124: it hung)"
[ "$elapsed_ms" -le 30000 ] || fail "the job took ${elapsed_ms} ms to end after a rank was killed"
echo "ok: a killed rank ended the 4-rank job in ${elapsed_ms} ms (exit $rc)"
leftover=$(pgrep -f "tessera train kill-$$.toml" || true)
[ -z "$leftover" ] || fail "rank processes still alive after the job ended: $leftover"

# A rank stopped mid-step (SIGSTOP: alive, holding its sockets, answering nothing): every other
# rank's watchdog ends the job after train.collective_timeout_s with a line naming the stopped
# rank (its heartbeat goes stale) and the operation it waited on; nothing hangs.
cp tiny.toml "stop-$$.toml"
timeout 120 mpirun --oversubscribe -np 4 "$TESSERA" train "stop-$$.toml" --set train.steps=1000000 \
  --set parallel.tp=2 --set parallel.pp=2 --set log.every=1000 --set train.collective_timeout_s=4 \
  --set log.dir='"stoprun"' >stop.txt 2>&1 &
launcher=$!
for _ in $(seq 300); do
  [ "$(ls stoprun/flight/*.heartbeat 2>/dev/null | wc -l)" -eq 4 ] && grep -q '^step=[1-9]' stoprun/flight/rank_3.heartbeat 2>/dev/null && break
  sleep 0.2
done
victim=$(sed -n 's/^pid=//p' stoprun/flight/rank_3.heartbeat)
[ -n "$victim" ] || { cat stop.txt; fail "rank 3 never published a heartbeat"; }
start=$(date +%s%N)
kill -STOP "$victim"
rc=0
wait "$launcher" || rc=$?
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
kill -KILL "$victim" 2>/dev/null || true  # if the launcher left it stopped
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || { cat stop.txt; fail "after SIGSTOP of a rank the launcher exited with $rc (124: it hung)"; }
[ "$elapsed_ms" -le 60000 ] || fail "the job took ${elapsed_ms} ms to end after a rank was stopped"
grep '^tessera: error: collective timeout' stop.txt | grep -q "rank 3 (.*, pid $victim): no heartbeat for" ||
  { cat stop.txt; fail "no timeout report named the stopped rank 3 (pid $victim)"; }
grep '^tessera: error: collective timeout: rank 2 ' stop.txt | grep -q "at step [0-9]*, micro-batch [0-9]* (\(forward\|backward\))" ||
  { cat stop.txt; fail "rank 2's report does not name the step, micro-batch and phase"; }
[ -s stoprun/flight/rank_2.flight ] || fail "no flight-recorder dump for rank 2"
echo "ok: a stopped rank ended the 4-rank job in ${elapsed_ms} ms: $(grep -m1 'collective timeout: rank 2 ' stop.txt | cut -c1-200)"
leftover=$(pgrep -f "tessera train stop-$$.toml" || true)
[ -z "$leftover" ] || fail "rank processes still alive after the job ended: $leftover"

# A straggler: rank 1 lags 200 ms a step (failpoint slow-step); the step log names it.
TESSERA_FAILPOINT='slow-step@1#1+' timeout 120 mpirun --oversubscribe -np 2 "$TESSERA" train tiny.toml \
  --set train.steps=4 --set log.dir='"slowrun"' >slow.txt 2>&1 || { cat slow.txt; fail "the straggler run failed"; }
grep -q "step 1: rank 1 (.*) is a straggler: its compute took [0-9]* ms, the ranks' mean [0-9]* ms" slow.txt ||
  { cat slow.txt; fail "the straggler was not named"; }
[ "$(grep -c 'is a straggler' slow.txt)" -eq 1 ] || { cat slow.txt; fail "the straggler was named more than once in 4 steps"; }
echo "ok: $(grep -m1 'is a straggler' slow.txt)"
