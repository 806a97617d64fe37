#include "runtime/error.h"

#include <cstdio>
#include <cstdlib>

namespace tessera {
namespace {
int g_rank_label = -1;
void (*g_abort_hook)() = nullptr;
}  // namespace

void error_set_rank_label(int rank) { g_rank_label = rank; }
void error_set_abort_hook(void (*hook)()) { g_abort_hook = hook; }

void fatal_check_failed(const char* library, const char* statement, const std::string& detail,
                        const char* file, int line) {
  if (g_rank_label >= 0)
    std::fprintf(stderr, "tessera: fatal [rank %d] %s: %s failed (%s) at %s:%d\n", g_rank_label,
                 library, statement, detail.c_str(), file, line);
  else
    std::fprintf(stderr, "tessera: fatal %s: %s failed (%s) at %s:%d\n", library, statement,
                 detail.c_str(), file, line);
  std::fflush(stderr);
  if (g_abort_hook) g_abort_hook();
  std::abort();
}

}  // namespace tessera
