#include "launch/version.h"

#include "git_commit.h"  // generated at every build: TESSERA_GIT_COMMIT

#ifndef TESSERA_VERSION
#define TESSERA_VERSION "0.0.0"
#endif

namespace tessera {

const char* tessera_version() { return TESSERA_VERSION; }
const char* tessera_git_commit() { return TESSERA_GIT_COMMIT; }

}  // namespace tessera
