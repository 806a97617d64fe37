#include "launch/version.h"

#ifndef TESSERA_VERSION
#define TESSERA_VERSION "0.0.0"
#endif
#ifndef TESSERA_GIT_COMMIT
#define TESSERA_GIT_COMMIT "unknown"
#endif

namespace tessera {

const char* tessera_version() { return TESSERA_VERSION; }
const char* tessera_git_commit() { return TESSERA_GIT_COMMIT; }

}  // namespace tessera
