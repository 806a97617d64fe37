#include "runtime/log.h"

#include <cstdarg>
#include <cstdio>

namespace tessera {
namespace {
bool g_enabled = true;
}

void log_set_enabled(bool enabled) { g_enabled = enabled; }
bool log_enabled() { return g_enabled; }

void log_info(const char* fmt, ...) {
  if (!g_enabled) return;
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stdout, fmt, ap);
  va_end(ap);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

void log_warn(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::fputs("tessera: warning: ", stderr);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fputc('\n', stderr);
}

std::string format_duration(double s) {
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%dh%02dm", int(s / 3600), int(s / 60) % 60);
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%dm%02ds", int(s / 60), int(s) % 60);
  else std::snprintf(buf, sizeof buf, "%.0fs", s);
  return buf;
}

}  // namespace tessera
