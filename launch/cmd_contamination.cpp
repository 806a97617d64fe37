#include "launch/commands.h"
#include "runtime/error.h"

namespace tessera {

int cmd_contamination(int, char**) { throw UserError("contamination: not implemented yet"); }

}  // namespace tessera
