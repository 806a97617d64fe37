// Console logging. Only the process the launcher enables prints info lines (rank 0 by
// default); warnings and errors print everywhere.
#pragma once

namespace tessera {

void log_set_enabled(bool enabled);
bool log_enabled();
void log_info(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace tessera
