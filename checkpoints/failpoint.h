// Named points in the checkpoint protocol where a test can make a process fail on purpose,
// to show that no failure anywhere leaves a checkpoint that would be picked but cannot load.
//   TESSERA_FAILPOINT=<name>[@<rank>][:error]
// kills the process with SIGKILL when it reaches <name> (on every rank, or only on <rank>), or
// with ":error" makes the step fail like an I/O error. Unset: a no-op.
#pragma once
#include <cstdint>

namespace tessera {

void failpoint(const char* name, int64_t rank);

}  // namespace tessera
