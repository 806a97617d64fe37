// Console logging. Only the process the launcher enables prints info lines (rank 0 by
// default); warnings and errors print everywhere.
#pragma once
#include <string>

namespace tessera {

void log_set_enabled(bool enabled);
bool log_enabled();
void log_info(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// "42s", "3m07s", "2h05m": a duration for progress and ETA lines.
std::string format_duration(double seconds);

}  // namespace tessera
