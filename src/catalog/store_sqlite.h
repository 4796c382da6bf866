/* catalog/store_sqlite.h — the embedded catalog store on SQLite.
 *
 * WAL mode with synchronous=FULL: a write is acknowledged only after its
 * commit is on disk. Writers are queued to one writer thread that applies
 * every queued txn in a single SQLite transaction (group commit), so N
 * concurrent writers share one fsync. Readers use their own connections. */
#ifndef CITRUS_CATALOG_STORE_SQLITE_H
#define CITRUS_CATALOG_STORE_SQLITE_H

#include <stddef.h>
#include <stdint.h>

#include "catalog/store.h"
#include "core/errdetail.h"
#include "sys/clock.h"

typedef struct store_sqlite_options {
    const char *path;      /* database file; created if absent */
    int64_t history_keep;  /* revisions of change history kept for watches; 0 = 100000 */
    const sysclock *clock; /* lease expiry's (borrowed, outlives the store); NULL = real */
    /* Bytes of pages in use past which writes that grow the store are
     * CITRUS_ENOSPACE (the NOSPACE alarm, store_status.nospace) until
     * store_compact or store_defrag bring it back under; 0 = no quota. */
    int64_t quota_bytes;
} store_sqlite_options;

/* Opens (or creates) the store. On failure returns a negative code and
 * writes a message to err. Leases found on disk restart their full TTL.
 * A database file serves one open store at a time (an exclusive flock):
 * opening it again, in this process or another, fails with CITRUS_EIO.
 * store_close gives each watch still open a final CITRUS_ECLOSED callback
 * and frees it: do not call store_watch_close on it afterwards. */
int store_sqlite_open(const store_sqlite_options *opts, store **out, errdetail *err);

/* Writes a new store file at path (which must not exist) holding exactly
 * the snapshot: its keys with their revisions, its leases, and the store
 * revision; history starts empty (compact_revision = revision + 1). Written
 * to a temporary file and renamed into place, so a failure leaves nothing. */
int store_sqlite_restore(const char *path, const kv_snapshot *snap, errdetail *err);

/* How many SQLite transactions the writer has committed since open: with
 * group commit this grows slower than the number of writes. For tests and
 * metrics; 0 for a store that is not a store_sqlite. */
uint64_t store_sqlite_commit_count(store *s);

#endif
