// The build's version and git commit (recorded in checkpoints and printed by `version`).
#pragma once

namespace tessera {

const char* tessera_version();
const char* tessera_git_commit();

}  // namespace tessera
