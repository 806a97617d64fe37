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

}  // namespace tessera
