#include "launch/commands.h"
#include "runtime/error.h"

namespace tessera {

int cmd_tokenizer(int, char**) { throw UserError("tokenizer: not implemented yet"); }

}  // namespace tessera
