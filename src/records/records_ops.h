/* records/records_ops.h — what a records backend implements, and the
 * helpers records.c gives the backends.
 *
 * records.c checks and normalizes the arguments (text cut to its limit and
 * made valid UTF-8, the page size clamped, the query's WHERE clause built),
 * pages, loops the purge and frees, and owns the write path: its writer
 * thread gathers concurrent appends and queued statuses into batches and
 * hands each to the backend's write_batch (group commit). A backend only
 * runs statements. Each backend serializes its calls itself (one
 * connection under a mutex): write_batch comes from the writer thread,
 * query and purge_batch from the callers' threads.
 *
 * For records.c and the backends only. */
#ifndef CITRUS_RECORDS_RECORDS_OPS_H
#define CITRUS_RECORDS_RECORDS_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/errdetail.h"

/* records.h's (not included: records.c, which implements it, includes this). */
typedef struct records records;
typedef struct audit_row audit_row;
typedef struct notification_row notification_row;
typedef struct processed_entry processed_entry;
typedef struct manifest_row manifest_row;

/* The audit table's columns in the order every backend selects them. */
#define RECORDS_AUDIT_COLUMNS                                                                      \
    "id, time_ms, principal, roles, auth_method, peer, method, route, action, target, status,"     \
    " correlation_id"
#define RECORDS_AUDIT_NCOLS 12
#define RECORDS_AUDIT_NTEXT 9 /* principal .. target, correlation_id */

/* A row's text fields in column order (principal, roles, auth_method, peer,
 * method, route, action, target, correlation_id): valid UTF-8 within their
 * limits, never NULL. */
typedef struct records_text {
    const char *v[RECORDS_AUDIT_NTEXT];
    char *owned[RECORDS_AUDIT_NTEXT]; /* what records.c allocated */
} records_text;

/* One bound parameter of a query: an integer or a text. */
typedef struct records_param {
    bool is_int;
    int64_t i;
    const char *s;
} records_param;

#define RECORDS_MAX_PARAMS 12

/* A query ready to run: sql has placeholders only ("?N" for SQLite, "$N"
 * for PostgreSQL), never a value; it selects RECORDS_AUDIT_COLUMNS, ordered
 * by id, at most limit + 1 rows (the one past the page says that more
 * follow). */
typedef struct records_filter {
    char sql[640];
    records_param p[RECORDS_MAX_PARAMS];
    int np;
    size_t limit;
    char *owned[4];
} records_filter;

/* One row of a batch (records.c normalized its text); write_batch sets id. */
typedef struct records_append {
    int64_t time_ms;
    const records_text *t;
    int status;
    int64_t id;
} records_append;

/* A queued result status for row id. */
typedef struct records_finish {
    int64_t id;
    int status;
} records_finish;

/* The most rows (appends) and the most statuses one batch holds. */
#define RECORDS_BATCH_MAX 4096
#define RECORDS_FINISH_MAX 4096

typedef struct records_ops {
    const char *name;
    char placeholder; /* of the query's parameters: '?' (SQLite: ?N) or '$' (PostgreSQL: $N) */
    /* Writes one batch in one transaction, all or nothing: first the n
     * rows, in order, each getting an id (rows[i].id) greater than every id
     * committed before and than rows[i - 1]'s; then the nfin statuses, each
     * set only on a row whose status is 0 (of several for one id the first
     * wins; an id with no row is no error). Returns 0 only once the
     * transaction is durable; on an error nothing of the batch was written
     * (PostgreSQL: unless the connection broke while COMMIT was in flight,
     * see records_pg.c). n, nfin <= RECORDS_BATCH_MAX, RECORDS_FINISH_MAX;
     * either may be 0. */
    int (*write_batch)(records *r, records_append *rows, size_t n, const records_finish *fin,
                       size_t nfin, errdetail *e);
    /* Runs f into rows (f->limit + 1 zeroed slots, filled with
     * records_row_set); *n: how many were filled (also on error: records.c
     * frees them). */
    int (*query)(records *r, const records_filter *f, audit_row *rows, size_t *n, errdetail *e);
    /* Deletes at most RECORDS_PURGE_BATCH rows older than before_ms
     * (RECORDS_PURGE_SQL). */
    int (*purge_batch)(records *r, int64_t before_ms, int64_t *deleted, errdetail *e);
    /* ---- the workers' ledger and notifications (ledger.h; ledger.c checks
     * and normalizes first). Each serialized like query. ---- */
    /* *seen: (group, id) is in the ledger. */
    int (*processed_seen)(records *r, const char *group, const char *id, bool *seen, errdetail *e);
    /* One transaction: for each entry its ledger row (insert unless there)
     * and, when that was new, its notification (normalized); sets each
     * entry's duplicate. All or nothing. */
    int (*processed_record)(records *r, processed_entry *entries, size_t n, errdetail *e);
    /* Runs f (selecting RECORDS_NOTIFY_COLUMNS) into rows (f->limit + 1
     * zeroed slots, filled with records_notification_set). */
    int (*notify_query)(records *r, const records_filter *f, notification_row *rows, size_t *n,
                        errdetail *e);
    /* Runs one purge statement (RECORDS_LEDGER_PURGE_SQL or
     * RECORDS_NOTIFY_PURGE_SQL with the backend's placeholder) with
     * before_ms; *deleted: rows removed. */
    int (*purge_sql)(records *r, const char *sql, int64_t before_ms, int64_t *deleted,
                     errdetail *e);
    /* Upserts a manifest (version + 1, or 1 when new). */
    int (*manifest_put)(records *r, const char *id, const char *body, int64_t time_ms,
                        bool *created, int64_t *version, errdetail *e);
    /* CITRUS_ENOTFOUND, or out filled (body malloc'd). */
    int (*manifest_get)(records *r, const char *id, manifest_row *out, errdetail *e);
    /* ---- one statement of the registration queue (registrations.c builds
     * it). Serialized like query. ---- */
    /* Runs sql (placeholders as placeholder says) with p[0..np). Rows (a
     * SELECT): at most max_rows, each of ncols columns, into cells
     * (row-major, max_rows * ncols zeroed slots; each a malloc'd text, SQL
     * NULL stays NULL), their count in *nrows (also on error: the caller
     * frees them). *changes: the rows a DELETE/INSERT/UPDATE changed. */
    int (*exec)(records *r, const char *sql, const records_param *p, int np, int ncols,
                size_t max_rows, char **cells, size_t *nrows, int64_t *changes, errdetail *e);
    void (*close)(records *r);
} records_ops;

typedef struct records_writer records_writer; /* records.c's */

/* Every backend's store starts with this. */
struct records {
    const records_ops *ops;
    records_writer *w; /* NULL until records_start */
};

/* Starts the store's writer thread: the last step of a backend's open
 * (before it, nothing can be appended). 0, or CITRUS_ENOMEM and r is as
 * before (the backend closes it). */
int records_start(records *r, errdetail *e);

/* One purge batch, with the backend's placeholder ("?1" or "$1"). Oldest
 * ids first, so a purge cut short by an error has removed a prefix. */
#define RECORDS_PURGE_BATCH 10000
#define RECORDS_STR_(x) #x
#define RECORDS_STR(x) RECORDS_STR_(x)
#define RECORDS_PURGE_SQL(param)                                                                   \
    "DELETE FROM citrus_audit WHERE id IN (SELECT id FROM citrus_audit WHERE time_ms < " param     \
    " ORDER BY id LIMIT " RECORDS_STR(RECORDS_PURGE_BATCH) ")"

/* The notifications table's columns in the order every backend selects
 * them; the texts are columns 2..8. */
#define RECORDS_NOTIFY_COLUMNS                                                                     \
    "id, time_ms, event_id, source, type, severity, subject, correlation_id, data"
#define RECORDS_NOTIFY_NTEXT 7

/* Retention of the ledger and of the notifications, a batch at a time. */
#define RECORDS_LEDGER_PURGE_SQL(param)                                                            \
    "DELETE FROM citrus_processed WHERE (grp, event_id) IN (SELECT grp, event_id FROM"             \
    " citrus_processed WHERE time_ms < " param " LIMIT " RECORDS_STR(RECORDS_PURGE_BATCH) ")"
#define RECORDS_NOTIFY_PURGE_SQL(param)                                                            \
    "DELETE FROM citrus_notifications WHERE id IN (SELECT id FROM citrus_notifications WHERE"      \
    " time_ms < " param " ORDER BY id LIMIT " RECORDS_STR(RECORDS_PURGE_BATCH) ")"

/* Fills a notification row (zeroed) with copies of text[] (event_id,
 * source, type, severity, subject, correlation_id, data). 0 or
 * CITRUS_ENOMEM (what was copied stays for notification_rows_free). */
int records_notification_set(notification_row *row, int64_t id, int64_t time_ms,
                             const char *const text[RECORDS_NOTIFY_NTEXT], errdetail *e);

/* in (NULL: "") as valid UTF-8 of at most max bytes (records.c's rule):
 * *out is in itself when it already is, else a copy in *owned (to free).
 * 0 or CITRUS_ENOMEM. */
int records_norm_text(const char *in, size_t max, const char **out, char **owned, errdetail *e);

/* Fills row (zeroed) with copies of the strings (text[] in column order;
 * NULL taken as ""). 0 or CITRUS_ENOMEM (what was copied stays for
 * audit_rows_free). */
int records_row_set(audit_row *row, int64_t id, int64_t time_ms,
                    const char *const text[RECORDS_AUDIT_NTEXT], int status, errdetail *e);

#endif
