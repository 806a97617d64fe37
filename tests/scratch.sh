# Sourced by test scripts: mpirun may run as root, and a scratch directory removed on exit is
# the current directory from here on, holding the fortune corpus in corpus/ (train/<lang>.txt,
# valid/<lang>.txt), and expect_exit2. Needs SRC set.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
"$SRC/scripts/build-fortune-corpus" corpus >/dev/null

# expect_exit2 CMD...: the command exits with code 2 and prints exactly one line on stderr (a user
# mistake's one-line error); otherwise the test fails, showing what it printed.
expect_exit2() {
  set +e
  "$@" 2>err.txt >/dev/null </dev/null
  local rc=$?
  set -e
  [ "$rc" -eq 2 ] || { echo "FAIL: '$*' exited $rc, wanted 2"; cat err.txt; exit 1; }
  [ "$(wc -l <err.txt)" -eq 1 ] || { echo "FAIL: '$*' printed more than one line"; cat err.txt; exit 1; }
}
