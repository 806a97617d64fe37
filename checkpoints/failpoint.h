// Named points in the checkpoint protocol where a test can make a process fail on purpose,
// to show that no failure anywhere leaves a checkpoint that would be picked but cannot load.
//   TESSERA_FAILPOINT=<name>[@<rank>][#<n>][:error]
// kills the process with SIGKILL the n-th time (default: first) it reaches <name> (on every
// rank, or only on <rank>), or with ":error" makes that step fail like an I/O error. Unset:
// a no-op. Points: shard-begin, shard-written, shard-synced (every owning rank), index-begin,
// index-written, renamed, latest-written (rank 0).
#pragma once
#include <cstdint>

namespace tessera {

void failpoint(const char* name, int64_t rank);
// The same spec as a question: true the n-th time (or, with "#n+", every time from the n-th on)
// this rank reaches `name`, which the caller then acts on (e.g. "nan-grad": the trainer puts a
// NaN into this rank's gradients). Points: nan-grad (every rank, once per step).
bool failpoint_reached(const char* name, int64_t rank);
// The spec's n when it names `name` (and this rank, if it names one), else -1: for points that
// are a place in the data rather than a count. Points: poison-batch (the trainer sets every
// target of the samples that step n of a run without skipped data would read to token 0, a
// data window that makes the loss explode wherever in the run it is read).
int64_t failpoint_number(const char* name, int64_t rank);

}  // namespace tessera
