/* bus/bus_sqlite.h — the embedded bus: a durable log in one SQLite file
 * (WAL, synchronous = FULL), publishers sharing commits. See bus_sqlite.c. */
#ifndef CITRUS_BUS_BUS_SQLITE_H
#define CITRUS_BUS_BUS_SQLITE_H

#include "bus/bus.h"

/* Opens (creating it and its tables if needed) the log at path with cfg
 * (NULL: the defaults; copied). 0, or CITRUS_EINVAL for a bad cfg,
 * CITRUS_EIO when the file cannot be opened or is not a bus log,
 * CITRUS_ENOMEM. Close with bus_close. */
int bus_open_sqlite(const char *path, const bus_config *cfg, bus **out, errdetail *e);

/* How many transactions b has committed since it was opened: with
 * concurrent publishers, fewer than their publishes (they share commits). */
int64_t bus_sqlite_commits(bus *b);

#endif
