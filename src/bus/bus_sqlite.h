/* bus/bus_sqlite.h — the embedded bus: a durable log in one SQLite file
 * (WAL, each answer after an fdatasync that covers it), publishers sharing
 * commits and syncs. See bus_sqlite.c. */
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

/* How many fdatasyncs of the log have released callers since b was opened:
 * each covers every transaction committed before it began. */
int64_t bus_sqlite_syncs(bus *b);

/* Replaces fdatasync on the log's WAL by sync (NULL: fdatasync again); for
 * tests that make a sync fail. */
void bus_sqlite_set_sync(bus *b, int (*sync)(int fd));

#endif
