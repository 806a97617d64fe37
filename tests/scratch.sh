# Sourced by test scripts: mpirun may run as root, and a scratch directory removed on exit is
# the current directory from here on, holding the fortune corpus in corpus/ (train/<lang>.txt,
# valid/<lang>.txt). Needs SRC set.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
"$SRC/scripts/build-fortune-corpus" corpus >/dev/null
