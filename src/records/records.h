/* records/records.h — the records store: Citrus's own records that must
 * outlive a request, first of all the append-only audit log (issue 12);
 * later the event workers' manifests and notifications.
 *
 * Two backends behind one interface, passing one conformance suite
 * (tests/unit/support_records_conformance.c): an embedded SQLite database
 * in the data dir (records_sqlite.c) and a PostgreSQL table shared by the
 * nodes of a cluster (records_pg.c).
 *
 * The audit log is append-only: a row is written once (records_audit_append)
 * and the only change it ever gets is its result status, once, when it was
 * appended without one (records_audit_finish). The only delete is retention
 * by age (records_audit_purge). There is no other update or delete.
 *
 * Writes are group-committed: appends made at the same time by several
 * threads go to the store together, in one transaction (one fsync, one
 * PostgreSQL commit), and statuses go with them; each append still returns
 * only once its own row is durable. A store has a writer thread of its own
 * from open to close.
 *
 * Every call is thread-safe. Failures return a negative CITRUS_E* code with
 * detail in e; a store that cannot be reached or written (file unwritable,
 * disk error, server down) is CITRUS_EAUDIT ("audit_unavailable", 503), so a
 * fail-closed caller refuses the mutation it was about to audit. */
#ifndef CITRUS_RECORDS_RECORDS_H
#define CITRUS_RECORDS_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#include "core/errdetail.h"

typedef struct records records; /* one store */

/* The longest value kept of each text field, in bytes. Longer values (the
 * client's own strings among them) are cut at a UTF-8 character boundary
 * on append, never refused: an audit write must not fail on what a client
 * sent. Invalid UTF-8 is stored with each bad byte replaced by U+FFFD
 * (PostgreSQL's text holds only valid UTF-8, and both backends store the
 * same). Query filters are normalized the same way, so a filter naming
 * the long original matches the row that kept its prefix. */
#define RECORDS_MAX_PRINCIPAL 256
#define RECORDS_MAX_ROLES 1024
#define RECORDS_MAX_AUTH_METHOD 32
#define RECORDS_MAX_PEER 128
#define RECORDS_MAX_METHOD 16
#define RECORDS_MAX_ROUTE 256
#define RECORDS_MAX_ACTION 128
#define RECORDS_MAX_TARGET 1024
#define RECORDS_MAX_CORRELATION_ID 128

/* Query page sizes: limit 0 is the default, above the maximum is clamped. */
#define RECORDS_QUERY_DEFAULT_LIMIT 100
#define RECORDS_QUERY_MAX_LIMIT 1000

typedef struct audit_row {
    int64_t id;              /* assigned by append: strictly increasing per store, never reused */
    int64_t time_ms;         /* Unix ms (the caller's, from its injected clock) */
    const char *principal;   /* "key:ab12cd/ci-bot", "alice", "anonymous" */
    const char *roles;       /* "sm-admin,reader" (comma-separated, may be "") */
    const char *auth_method; /* "api_key","jwt","trusted_headers","mtls","none","anonymous" */
    const char *peer;        /* "127.0.0.1:53412" */
    const char *method;      /* HTTP method */
    const char *route;       /* route pattern, e.g. "/v1/kv/{key*}" */
    const char *action;      /* "kv.put", "shard.drain", "auth.denied", ... */
    const char *target;      /* "app/x", shard id, tenant key; may be "" */
    int status;              /* HTTP result status; 0 = not yet known (records_audit_finish) */
    const char *correlation_id;
} audit_row;

typedef struct audit_query {
    int64_t since_ms;      /* 0 = no bound; else rows with time_ms >= since_ms */
    const char *principal; /* exact match, or NULL */
    /* Exact match; or a prefix: "shard.*" and "shard." both match every
     * action starting with "shard." (and only those); "*" matches all.
     * NULL: any. */
    const char *action;
    const char *target; /* exact match, or NULL */
    int64_t after_id;   /* rows with id > after_id (0 = from the start) */
    size_t limit;       /* 0 = RECORDS_QUERY_DEFAULT_LIMIT; clamped to RECORDS_QUERY_MAX_LIMIT */
} audit_query;

/* Opens (creating the file and schema when absent) the SQLite store at path
 * (the node passes <data-dir>/records.db; its directory must exist). A path
 * that cannot be opened or is not a records database: CITRUS_EAUDIT. */
int records_open_sqlite(const char *path, records **out, errdetail *e);

/* Connects to PostgreSQL (a libpq DSN: URI or key=value) and creates the
 * table citrus_audit when missing. connect_timeout defaults to 3 s. The DSN
 * (which may hold a password) never appears in an error or a log line.
 * Server unreachable: CITRUS_EAUDIT; malformed DSN: CITRUS_EINVAL. */
int records_open_postgres(const char *dsn, records **out, errdetail *e);

/* Closes the store (NULL is fine) after writing the statuses still queued
 * (records_audit_finish); those it cannot write are logged and lost (their
 * rows keep status 0). No call may be running on it. */
void records_close(records *r);

/* "sqlite" or "postgres". */
const char *records_backend(const records *r);

/* Appends row (its id is ignored; NULL strings are stored as "") and sets
 * *id (may be NULL) to the id it got. Returns 0 only once the row is
 * durable: a fail-closed caller refuses the mutation on any error.
 *
 * Concurrent appends are committed together (see above); when that commit
 * fails, every append of the batch returns the error (CITRUS_EAUDIT) and
 * none of their rows is in the store, with one PostgreSQL exception: when
 * the connection breaks while the COMMIT is in flight, the server may have
 * committed rows whose appends returned CITRUS_EAUDIT (an extra audit row
 * of a refused mutation, never a missing one of an applied mutation).
 * Every append that returned 0 is in the store. Ids are strictly
 * increasing in commit order: an append that returned before another began
 * has the smaller id. While RECORDS_BATCH_MAX (records_ops.h: 4096)
 * appends already wait, a new one waits for room (never dropped). */
int records_audit_append(records *r, const audit_row *row, int64_t *id, errdetail *e);

/* Queues the result status (1..999) of row id, to be written with the next
 * batch of appends, or within some 20 ms when none comes; fire-and-forget.
 * Only a row appended with status 0 takes a status, and only the first:
 * a row whose status is set keeps it, whatever later finishes say, and a
 * finish of an id with no row (never appended, or purged) changes nothing.
 * Neither is reported: the call does not wait for the store.
 *
 * A query made after this returns (by any thread) sees the status: it
 * writes the queued statuses first. records_close writes them too. A
 * status queued when the store then fails stays queued and goes with the
 * next batch; one the store can never take (closed while unavailable) is
 * lost and logged, its row keeping status 0 ("not known").
 *
 * 0: queued. CITRUS_EINVAL: no store, id <= 0, status out of range.
 * CITRUS_EAUDIT: the store's last write failed (it is unavailable), the
 * status is not queued. CITRUS_ENOMEM: RECORDS_FINISH_MAX (4096) statuses
 * already wait, the status is not queued. */
int records_audit_finish(records *r, int64_t id, int status, errdetail *e);

/* records_audit_append without waiting: cb(ctx, rc, id, e) runs exactly
 * once, on the store's writer thread, when the row's batch is durable (rc
 * 0, id its id) or failed (rc and e as records_audit_append would give);
 * it must not block. A request that cannot be queued (bad row, closing,
 * out of memory) is refused here (no callback). Lets an HTTP handler park
 * its connection while the row is written instead of holding a thread. */
typedef void (*records_append_cb)(void *ctx, int rc, int64_t id, const errdetail *e);
int records_audit_append_async(records *r, const audit_row *row, records_append_cb cb, void *ctx,
                               errdetail *e);

/* The rows matching q (NULL: every row), oldest first by id, at most the
 * limit, with every status queued before the call (records_audit_finish)
 * written first: CITRUS_EAUDIT when that write fails. *next_after is the last id returned when more
 * rows match after it (pass it as the next query's after_id), 0 when this was the last page. *rows
 * (NULL when *n is 0) owns its strings: audit_rows_free. */
int records_audit_query(records *r, const audit_query *q, audit_row **rows, size_t *n,
                        int64_t *next_after, errdetail *e);

/* Frees rows returned by records_audit_query (NULL is fine). */
void audit_rows_free(audit_row *rows, size_t n);

/* Retention: deletes the rows with time_ms < before_ms, in batches (so no
 * single statement holds the store for long), and sets *deleted (may be
 * NULL) to how many went. The only delete there is. */
int records_audit_purge(records *r, int64_t before_ms, int64_t *deleted, errdetail *e);

#endif
