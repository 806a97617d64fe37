#include "checkpoints/failpoint.h"

#include <csignal>
#include <cstdlib>
#include <string>

#include "runtime/error.h"

namespace tessera {

void failpoint(const char* name, int64_t rank) {
  static const char* spec = std::getenv("TESSERA_FAILPOINT");
  if (!spec || !*spec) return;
  std::string s = spec;
  bool error = false;
  if (const size_t c = s.find(':'); c != std::string::npos) {
    error = s.substr(c + 1) == "error";
    s = s.substr(0, c);
  }
  int64_t nth = 1;
  if (const size_t h = s.find('#'); h != std::string::npos) {
    nth = std::stoll(s.substr(h + 1));
    s = s.substr(0, h);
  }
  if (const size_t a = s.find('@'); a != std::string::npos) {
    if (std::stoll(s.substr(a + 1)) != rank) return;
    s = s.substr(0, a);
  }
  if (s != name) return;
  static int64_t reached = 0;
  if (++reached != nth) return;
  if (error) throw UserError(std::string("failpoint ") + name + ": injected I/O error");
  std::raise(SIGKILL);
}

}  // namespace tessera
