/* records/records_sqlite.c — the records store on an embedded SQLite
 * database of its own (<data-dir>/records.db), apart from the catalog's
 * file so that neither's writes wait for the other's.
 *
 * One connection under a mutex. Writes come from records.c's writer
 * thread as batches (group commit, see records.c): every row and status of
 * a batch in one BEGIN IMMEDIATE ... COMMIT, so the appends of concurrent
 * requests share one fsync. Queries and purges take the same connection
 * between batches.
 *
 * Durability: WAL with synchronous=FULL, so a batch's commit is synced to
 * disk before any of its appends returns. NORMAL would sync the WAL only
 * at checkpoints: a power loss could then drop audit rows of mutations
 * that were applied and acknowledged, which is exactly what a fail-closed
 * audit log promises cannot happen. The cost is one fsync per batch.
 *
 * Ids: INTEGER PRIMARY KEY AUTOINCREMENT, so an id is never handed out
 * again, not even after the newest rows were purged (a plain rowid would
 * restart after max(id) and a reader paging with after_id would miss rows).
 *
 * Every SQLite failure but out-of-memory is CITRUS_EAUDIT: to the caller
 * the store is unavailable, whatever the disk said. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "records/ledger.h"
#include "records/records.h"
#include "records/records_ops.h"

#define SCHEMA_VERSION 1
#define BUSY_TIMEOUT_MS 5000

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS citrus_audit ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INTEGER NOT NULL,"
    " principal TEXT NOT NULL, roles TEXT NOT NULL, auth_method TEXT NOT NULL,"
    " peer TEXT NOT NULL, method TEXT NOT NULL, route TEXT NOT NULL, action TEXT NOT NULL,"
    " target TEXT NOT NULL, status INTEGER NOT NULL DEFAULT 0, correlation_id TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS citrus_audit_time ON citrus_audit (time_ms);"
    "CREATE INDEX IF NOT EXISTS citrus_audit_principal ON citrus_audit (principal, id);"
    "CREATE INDEX IF NOT EXISTS citrus_audit_action ON citrus_audit (action, id);"
    "CREATE INDEX IF NOT EXISTS citrus_audit_target ON citrus_audit (target, id);"
    /* The workers' (records/ledger.h): added in the same schema version,
     * created when missing. */
    "CREATE TABLE IF NOT EXISTS citrus_processed ("
    " grp TEXT NOT NULL, event_id TEXT NOT NULL, time_ms INTEGER NOT NULL,"
    " PRIMARY KEY (grp, event_id)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS citrus_processed_time ON citrus_processed (time_ms);"
    "CREATE TABLE IF NOT EXISTS citrus_notifications ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INTEGER NOT NULL, event_id TEXT NOT NULL,"
    " source TEXT NOT NULL, type TEXT NOT NULL, severity TEXT NOT NULL, subject TEXT NOT NULL,"
    " correlation_id TEXT NOT NULL, data TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS citrus_notifications_time ON citrus_notifications (time_ms);"
    "CREATE INDEX IF NOT EXISTS citrus_notifications_source ON citrus_notifications (source, id);"
    "CREATE INDEX IF NOT EXISTS citrus_notifications_type ON citrus_notifications (type, id);"
    "CREATE INDEX IF NOT EXISTS citrus_notifications_severity"
    " ON citrus_notifications (severity, id);"
    "CREATE TABLE IF NOT EXISTS citrus_manifests (id TEXT PRIMARY KEY, body TEXT NOT NULL,"
    " updated_ms INTEGER NOT NULL, version INTEGER NOT NULL);"
    /* the registration queue's (records/registrations.h) */
    "CREATE TABLE IF NOT EXISTS citrus_registrations ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
    " business_id TEXT NOT NULL, location_id TEXT NOT NULL, business_type TEXT NOT NULL,"
    " state TEXT NOT NULL, attempts INTEGER NOT NULL, last_error TEXT NOT NULL,"
    " next_attempt_ms INTEGER NOT NULL, shard_id TEXT NOT NULL, created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL, finished_ms INTEGER NOT NULL,"
    " drive_attempts INTEGER NOT NULL DEFAULT 0, correlation_id TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX IF NOT EXISTS citrus_registrations_state ON citrus_registrations (state, seq);"
    "CREATE INDEX IF NOT EXISTS citrus_registrations_business"
    " ON citrus_registrations (business_id, seq);"
    "CREATE INDEX IF NOT EXISTS citrus_registrations_finished"
    " ON citrus_registrations (finished_ms);"
    "PRAGMA user_version = 1;";

#define STMT_TABLE(X)                                                                              \
    X(BEGIN, "BEGIN IMMEDIATE")                                                                    \
    X(COMMIT, "COMMIT")                                                                            \
    X(ROLLBACK, "ROLLBACK")                                                                        \
    X(APPEND, "INSERT INTO citrus_audit (time_ms, principal, roles, auth_method, peer, method,"    \
              " route, action, target, correlation_id, status)"                                    \
              " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)")                            \
    X(FINISH, "UPDATE citrus_audit SET status = ?2 WHERE id = ?1 AND status = 0")                  \
    X(PURGE, RECORDS_PURGE_SQL("?1"))                                                              \
    X(SEEN, "SELECT 1 FROM citrus_processed WHERE grp = ?1 AND event_id = ?2")                     \
    X(LEDGER,                                                                                      \
      "INSERT OR IGNORE INTO citrus_processed (grp, event_id, time_ms) VALUES (?1, ?2, ?3)")       \
    X(MANIFEST_PUT, "INSERT INTO citrus_manifests (id, body, updated_ms, version)"                 \
                    " VALUES (?1, ?2, ?3, 1) ON CONFLICT (id) DO UPDATE SET body = excluded.body," \
                    " updated_ms = excluded.updated_ms, version = citrus_manifests.version + 1"    \
                    " RETURNING version")                                                          \
    X(MANIFEST_GET, "SELECT body, updated_ms, version FROM citrus_manifests WHERE id = ?1")        \
    X(NOTIFY, "INSERT INTO citrus_notifications (time_ms, event_id, source, type, severity,"       \
              " subject, correlation_id, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")

typedef enum {
#define STMT_ENUM(name, sql) ST_##name,
    STMT_TABLE(STMT_ENUM)
#undef STMT_ENUM
        ST_COUNT
} stmt_id;

static const char *const stmt_sql[ST_COUNT] = {
#define STMT_SQL(name, sql) sql,
    STMT_TABLE(STMT_SQL) // NOLINT(bugprone-suspicious-missing-comma)
#undef STMT_SQL
};

typedef struct sqlite_records {
    records base;
    pthread_mutex_t mu; /* guards db and st: one statement at a time */
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
} sqlite_records;

static sqlite_records *self(records *r)
{
    return (sqlite_records *)r;
}

/* The error of a failed SQLite call on db (rc its code). */
static int fail(sqlite3 *db, int rc, const char *what, errdetail *e)
{
    if (rc == SQLITE_NOMEM)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    return errdetail_set(e, CITRUS_EAUDIT, "records store (sqlite) unavailable: %s: %s", what,
                         db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

/* Steps a statement to its end (resetting it and clearing its bindings). */
static int step_done(sqlite_records *s, stmt_id id, const char *what, errdetail *e)
{
    sqlite3_stmt *st = s->st[id];
    int rc = sqlite3_step(st);
    int out = rc == SQLITE_DONE ? 0 : fail(s->db, rc, what, e);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return out;
}

static int bind_text(sqlite3_stmt *st, int i, const char *v)
{
    return sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
}

/* Inserts one row of a batch; its id into row->id. mu held, in the batch's
 * transaction. */
static int lite_insert(sqlite_records *s, records_append *row, errdetail *e)
{
    sqlite3_stmt *st = s->st[ST_APPEND];
    int rc = sqlite3_bind_int64(st, 1, row->time_ms);
    for (int i = 0; i < RECORDS_AUDIT_NTEXT && rc == SQLITE_OK; i++)
        rc = bind_text(st, i + 2, row->t->v[i]);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 11, row->status);
    if (rc != SQLITE_OK) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return fail(s->db, rc, "append", e);
    }
    int out = step_done(s, ST_APPEND, "append", e);
    if (out == 0)
        row->id = sqlite3_last_insert_rowid(s->db);
    return out;
}

/* The whole batch in one transaction: AUTOINCREMENT hands out the ids in
 * insert order, each above every id ever given (see the header). */
static int lite_write_batch(records *r, records_append *rows, size_t n, const records_finish *fin,
                            size_t nfin, errdetail *e)
{
    sqlite_records *s = self(r);
    pthread_mutex_lock(&s->mu);
    int out = step_done(s, ST_BEGIN, "begin", e);
    for (size_t i = 0; i < n && out == 0; i++)
        out = lite_insert(s, &rows[i], e);
    for (size_t i = 0; i < nfin && out == 0; i++) {
        /* WHERE status = 0: of two statuses for one row the first stays. */
        sqlite3_bind_int64(s->st[ST_FINISH], 1, fin[i].id);
        sqlite3_bind_int(s->st[ST_FINISH], 2, fin[i].status);
        out = step_done(s, ST_FINISH, "finish", e);
    }
    if (out == 0)
        out = step_done(s, ST_COMMIT, "commit", e);
    /* After a failed statement or COMMIT (the WAL could not be written or
     * synced) the transaction may still be open, or SQLite rolled it back
     * itself. */
    if (out != 0 && !sqlite3_get_autocommit(s->db))
        step_done(s, ST_ROLLBACK, "rollback", NULL);
    pthread_mutex_unlock(&s->mu);
    return out;
}

/* sql prepared into *st with the parameters of a query bound (the
 * caller holds the lock and finalizes *st): SQLite's result code. */
static int prepare_bound(sqlite_records *s, const char *sql, const records_param *p, int np,
                         sqlite3_stmt **st)
{
    *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
    for (int i = 0; i < np && rc == SQLITE_OK; i++)
        rc = p[i].is_int ? sqlite3_bind_int64(*st, i + 1, p[i].i) : bind_text(*st, i + 1, p[i].s);
    return rc;
}

static int lite_query(records *r, const records_filter *f, audit_row *rows, size_t *n, errdetail *e)
{
    sqlite_records *s = self(r);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = prepare_bound(s, f->sql, f->p, f->np, &st);
    int out = rc == SQLITE_OK ? 0 : fail(s->db, rc, "query", e);
    while (out == 0 && *n <= f->limit) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            out = fail(s->db, rc, "query", e);
            break;
        }
        const char *text[RECORDS_AUDIT_NTEXT];
        for (int c = 2; c <= 9; c++)
            text[c - 2] = (const char *)sqlite3_column_text(st, c);
        text[8] = (const char *)sqlite3_column_text(st, 11);
        out = records_row_set(&rows[*n], sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
                              text, sqlite3_column_int(st, 10), e);
        (*n)++;
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return out;
}

static int lite_purge_batch(records *r, int64_t before_ms, int64_t *deleted, errdetail *e)
{
    sqlite_records *s = self(r);
    pthread_mutex_lock(&s->mu);
    sqlite3_bind_int64(s->st[ST_PURGE], 1, before_ms);
    int out = step_done(s, ST_PURGE, "purge", e);
    if (out == 0)
        *deleted = sqlite3_changes(s->db);
    pthread_mutex_unlock(&s->mu);
    return out;
}

static int lite_processed_seen(records *r, const char *group, const char *id, bool *seen,
                               errdetail *e)
{
    sqlite_records *s = self(r);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st = s->st[ST_SEEN];
    bind_text(st, 1, group);
    bind_text(st, 2, id);
    int rc = sqlite3_step(st);
    int out = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail(s->db, rc, "ledger", e);
    *seen = rc == SQLITE_ROW;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    pthread_mutex_unlock(&s->mu);
    return out;
}

/* One entry inside the transaction: its ledger row, and its notification
 * when the row is new. */
static int lite_entry(sqlite_records *s, processed_entry *p, errdetail *e)
{
    sqlite3_stmt *st = s->st[ST_LEDGER];
    bind_text(st, 1, p->group);
    bind_text(st, 2, p->event_id);
    sqlite3_bind_int64(st, 3, p->time_ms);
    int out = step_done(s, ST_LEDGER, "ledger", e);
    if (out != 0)
        return out;
    p->duplicate = sqlite3_changes(s->db) == 0;
    const notification_row *n = p->notification;
    if (p->duplicate || !n)
        return 0;
    st = s->st[ST_NOTIFY];
    sqlite3_bind_int64(st, 1, n->time_ms);
    const char *text[] = {n->event_id, n->source,         n->type, n->severity,
                          n->subject,  n->correlation_id, n->data};
    for (int i = 0; i < RECORDS_NOTIFY_NTEXT; i++)
        bind_text(st, i + 2, text[i]);
    return step_done(s, ST_NOTIFY, "notification", e);
}

static int lite_processed_record(records *r, processed_entry *entries, size_t n, errdetail *e)
{
    sqlite_records *s = self(r);
    pthread_mutex_lock(&s->mu);
    int out = step_done(s, ST_BEGIN, "begin", e);
    for (size_t i = 0; i < n && out == 0; i++)
        out = lite_entry(s, &entries[i], e);
    if (out == 0)
        out = step_done(s, ST_COMMIT, "commit", e);
    if (out != 0 && !sqlite3_get_autocommit(s->db))
        step_done(s, ST_ROLLBACK, "rollback", NULL);
    pthread_mutex_unlock(&s->mu);
    return out;
}

static int lite_notify_query(records *r, const records_filter *f, notification_row *rows, size_t *n,
                             errdetail *e)
{
    sqlite_records *s = self(r);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = prepare_bound(s, f->sql, f->p, f->np, &st);
    int out = rc == SQLITE_OK ? 0 : fail(s->db, rc, "query", e);
    while (out == 0 && *n <= f->limit) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            out = fail(s->db, rc, "query", e);
            break;
        }
        const char *text[RECORDS_NOTIFY_NTEXT];
        for (int c = 0; c < RECORDS_NOTIFY_NTEXT; c++)
            text[c] = (const char *)sqlite3_column_text(st, c + 2);
        out = records_notification_set(&rows[*n], sqlite3_column_int64(st, 0),
                                       sqlite3_column_int64(st, 1), text, e);
        (*n)++;
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return out;
}

static int lite_purge_sql(records *r, const char *sql, int64_t before_ms, int64_t *deleted,
                          errdetail *e)
{
    sqlite_records *s = self(r);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 1, before_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    int out = rc == SQLITE_DONE ? 0 : fail(s->db, rc, "purge", e);
    if (out == 0)
        *deleted = sqlite3_changes(s->db);
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return out;
}

static int lite_manifest_put(records *r, const char *id, const char *body, int64_t time_ms,
                             bool *created, int64_t *version, errdetail *e)
{
    sqlite_records *s = self(r);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st = s->st[ST_MANIFEST_PUT];
    bind_text(st, 1, id);
    bind_text(st, 2, body);
    sqlite3_bind_int64(st, 3, time_ms);
    int rc = sqlite3_step(st);
    int out = rc == SQLITE_ROW ? 0 : fail(s->db, rc, "manifest", e);
    if (out == 0) {
        *version = sqlite3_column_int64(st, 0);
        *created = *version == 1;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    pthread_mutex_unlock(&s->mu);
    return out;
}

static int lite_manifest_get(records *r, const char *id, manifest_row *out, errdetail *e)
{
    sqlite_records *s = self(r);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st = s->st[ST_MANIFEST_GET];
    bind_text(st, 1, id);
    int rc = sqlite3_step(st);
    int res;
    if (rc == SQLITE_ROW) {
        out->body = strdup((const char *)sqlite3_column_text(st, 0));
        out->updated_ms = sqlite3_column_int64(st, 1);
        out->version = sqlite3_column_int64(st, 2);
        res = out->body ? 0 : errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    } else if (rc == SQLITE_DONE) {
        res = errdetail_set(e, CITRUS_ENOTFOUND, "no manifest %s", id);
    } else {
        res = fail(s->db, rc, "manifest", e);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    pthread_mutex_unlock(&s->mu);
    return res;
}

static int lite_exec(records *r, const char *sql, const records_param *p, int np, int ncols,
                     size_t max_rows, char **cells, size_t *nrows, int64_t *changes, errdetail *e)
{
    sqlite_records *s = self(r);
    *nrows = 0;
    *changes = 0;
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = prepare_bound(s, sql, p, np, &st);
    int out = rc == SQLITE_OK ? 0 : fail(s->db, rc, "registrations", e);
    while (out == 0) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            out = fail(s->db, rc, "registrations", e);
            break;
        }
        if (*nrows >= max_rows)
            continue;
        for (int c = 0; c < ncols && out == 0; c++) {
            const char *v = (const char *)sqlite3_column_text(st, c);
            if (v && !(cells[*nrows * (size_t)ncols + (size_t)c] = strdup(v)))
                out = errdetail_set(e, CITRUS_ENOMEM, "out of memory");
        }
        (*nrows)++;
    }
    if (out == 0)
        *changes = sqlite3_changes(s->db);
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return out;
}

static void lite_close(records *r)
{
    sqlite_records *s = self(r);
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static const records_ops sqlite_ops = {
    .name = "sqlite",
    .placeholder = '?',
    .write_batch = lite_write_batch,
    .query = lite_query,
    .purge_batch = lite_purge_batch,
    .processed_seen = lite_processed_seen,
    .processed_record = lite_processed_record,
    .notify_query = lite_notify_query,
    .purge_sql = lite_purge_sql,
    .manifest_put = lite_manifest_put,
    .manifest_get = lite_manifest_get,
    .exec = lite_exec,
    .close = lite_close,
};

/* A registrations table made before a column was (drive_attempts,
 * correlation_id): the column added (SQLite has no ADD COLUMN IF NOT
 * EXISTS; the table's own columns say). add is the ALTER TABLE. */
static int add_column(sqlite3 *db, const char *name, const char *add)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT count(*) FROM pragma_table_info('citrus_registrations')"
                                " WHERE name = ?1",
                                -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    bool has = false;
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        has = sqlite3_column_int(st, 0) > 0;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK && !has)
        rc = sqlite3_exec(db, add, NULL, NULL, NULL);
    return rc;
}

/* Pragmas and schema on a fresh connection. */
static int lite_setup(sqlite_records *s, const char *path, errdetail *e)
{
    sqlite3 *db = s->db;
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(db, 1);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
    int version = 0;
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        version = sqlite3_column_int(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        return fail(db, rc, path, e);         /* also what a file that is no database gives */
    if (sqlite3_db_readonly(db, "main") == 1) /* SQLite falls back to read-only silently */
        return errdetail_set(e, CITRUS_EAUDIT,
                             "records store (sqlite) unavailable: %s can only be read", path);
    if (version > SCHEMA_VERSION)
        return errdetail_set(e, CITRUS_EAUDIT,
                             "records store (sqlite) unavailable: %s has schema version %d, this "
                             "build knows %d",
                             path, version, SCHEMA_VERSION);
    rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, schema_sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = add_column(db, "drive_attempts",
                        "ALTER TABLE citrus_registrations"
                        " ADD COLUMN drive_attempts INTEGER NOT NULL DEFAULT 0");
    if (rc == SQLITE_OK)
        rc = add_column(db, "correlation_id",
                        "ALTER TABLE citrus_registrations"
                        " ADD COLUMN correlation_id TEXT NOT NULL DEFAULT ''");
    for (int i = 0; i < ST_COUNT && rc == SQLITE_OK; i++)
        rc = sqlite3_prepare_v3(db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL);
    return rc == SQLITE_OK ? 0 : fail(db, rc, path, e);
}

int records_open_sqlite(const char *path, records **out, errdetail *e)
{
    *out = NULL;
    if (!path || !*path)
        return errdetail_set(e, CITRUS_EINVAL, "records store (sqlite): no path");
    sqlite_records *s = calloc(1, sizeof(*s));
    if (!s)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    s->base.ops = &sqlite_ops;
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s);
        return errdetail_set(e, CITRUS_ENOMEM, "records store: mutex");
    }
    /* NOMUTEX: mu serializes every use of the connection. */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(path, &s->db, flags, NULL);
    int out_rc = rc == SQLITE_OK ? lite_setup(s, path, e) : fail(s->db, rc, path, e);
    if (out_rc == 0)
        out_rc = records_start(&s->base, e);
    if (out_rc != 0) {
        lite_close(&s->base);
        return out_rc;
    }
    *out = &s->base;
    return 0;
}
