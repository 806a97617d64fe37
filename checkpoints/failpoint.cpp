#include "checkpoints/failpoint.h"

#include <csignal>
#include <cstdlib>
#include <string>

#include "runtime/error.h"

namespace tessera {

namespace {

struct Spec {
  std::string name;
  int64_t rank = -1, nth = 1;
  bool from_nth = false, error = false;
};

// TESSERA_FAILPOINT=<name>[@<rank>][#<n>[+]][:error]; empty name when unset.
const Spec& spec() {
  static const Spec parsed = [] {
    Spec p;
    const char* env = std::getenv("TESSERA_FAILPOINT");
    if (!env || !*env) return p;
    std::string s = env;
    if (const size_t c = s.find(':'); c != std::string::npos) {
      p.error = s.substr(c + 1) == "error";
      s = s.substr(0, c);
    }
    if (const size_t h = s.find('#'); h != std::string::npos) {
      std::string n = s.substr(h + 1);
      if (!n.empty() && n.back() == '+') p.from_nth = true, n.pop_back();
      p.nth = std::stoll(n);
      s = s.substr(0, h);
    }
    if (const size_t a = s.find('@'); a != std::string::npos) {
      p.rank = std::stoll(s.substr(a + 1));
      s = s.substr(0, a);
    }
    p.name = s;
    return p;
  }();
  return parsed;
}

}  // namespace

bool failpoint_reached(const char* name, int64_t rank) {
  const Spec& p = spec();
  if (p.name.empty() || p.name != name || (p.rank >= 0 && p.rank != rank)) return false;
  static int64_t reached = 0;
  ++reached;
  return p.from_nth ? reached >= p.nth : reached == p.nth;
}

int64_t failpoint_number(const char* name, int64_t rank) {
  const Spec& p = spec();
  if (p.name.empty() || p.name != name || (p.rank >= 0 && p.rank != rank)) return -1;
  return p.nth;
}

void failpoint(const char* name, int64_t rank) {
  if (!failpoint_reached(name, rank)) return;
  if (spec().error) throw UserError(std::string("failpoint ") + name + ": injected I/O error");
  std::raise(SIGKILL);
}

}  // namespace tessera
