/* records/records_pg.c — the records store on PostgreSQL, for clusters:
 * every node appends to one table, citrus_audit, created when missing.
 *
 * One libpq connection under a mutex; every statement goes through
 * PQexecParams with text parameters (values are never part of the SQL).
 * Writes come from records.c's writer thread as batches (group commit, see
 * records.c): the rows and statuses of a batch in one transaction, so
 * concurrent appends share one commit. A statement that fails on a broken
 * connection (PQstatus CONNECTION_BAD: the server restarted, the network
 * dropped) is retried once after PQreset when it is a query, a purge or a
 * batch's BEGIN; if that fails too the call is CITRUS_EAUDIT. A statement
 * inside a batch's transaction is not retried: the batch fails, all or
 * nothing, and every append in it returns CITRUS_EAUDIT. One caveat: when
 * the connection breaks while COMMIT is in flight, the server may have
 * committed a batch whose appends then return CITRUS_EAUDIT (the mutation
 * is refused, its audit row is there anyway: an extra row, never a
 * missing one).
 *
 * Bounds: connect_timeout (3 s unless the DSN sets one) for an unreachable
 * server, tcp_user_timeout for one that stops answering on an open
 * connection, and statement_timeout for one that answers but hangs (a
 * lock): a fail-closed caller waits that long at most before refusing.
 *
 * Durability: a commit is durable when the server says so; a session whose
 * synchronous_commit is off turns it on, so an append is at least flushed
 * on the server before it returns.
 *
 * Ids: a bigserial, taken (a batch's all at once, ascending) under a
 * transaction-scoped advisory lock held to the commit, so ids become
 * visible in increasing order even with several nodes appending: a reader
 * paging with after_id never passes an id whose row commits later.
 *
 * The DSN (it may hold a password) is never put in an error or a log line:
 * errors carry libpq's message (which does not include the password),
 * first line only. */
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "obs/log.h"
#include "records/ledger.h"
#include "records/records.h"
#include "records/records_ops.h"

#define CONNECT_TIMEOUT_S "3"
#define TCP_USER_TIMEOUT_MS "10000"
#define STATEMENT_TIMEOUT_MS "10000"
#define MAX_KEYWORDS 64
/* The advisory lock key of citrus_audit's appends (and of its creation):
 * any constant no other code uses; this is "citaudit" in ASCII. */
#define AUDIT_LOCK_KEY "7595434211513689460"
/* The advisory lock of citrus_notifications' inserts: "citnotif". */
#define NOTIFY_LOCK_KEY "7163384699974609254"

/* Run once per connection, in one transaction under the lock, so nodes
 * starting together do not race on CREATE TABLE (which is not safe to run
 * concurrently even with IF NOT EXISTS). Columns compared by the query
 * filters collate "C": bytewise, so the action prefix range is exact and
 * served by the index. */
static const char schema_sql[] =
    "BEGIN;"
    "SELECT pg_advisory_xact_lock(" AUDIT_LOCK_KEY ");"
    "CREATE TABLE IF NOT EXISTS citrus_audit ("
    " id bigserial PRIMARY KEY, time_ms bigint NOT NULL,"
    " principal text COLLATE \"C\" NOT NULL, roles text NOT NULL, auth_method text NOT NULL,"
    " peer text NOT NULL, method text NOT NULL, route text NOT NULL,"
    " action text COLLATE \"C\" NOT NULL, target text COLLATE \"C\" NOT NULL,"
    " status integer NOT NULL DEFAULT 0, correlation_id text NOT NULL);"
    "CREATE INDEX IF NOT EXISTS citrus_audit_time ON citrus_audit (time_ms);"
    "CREATE INDEX IF NOT EXISTS citrus_audit_principal ON citrus_audit (principal, id);"
    "CREATE INDEX IF NOT EXISTS citrus_audit_action ON citrus_audit (action, id);"
    "CREATE INDEX IF NOT EXISTS citrus_audit_target ON citrus_audit (target, id);"
    /* the workers' ledger and notifications (records/ledger.h) */
    "CREATE TABLE IF NOT EXISTS citrus_processed ("
    " grp text COLLATE \"C\" NOT NULL, event_id text COLLATE \"C\" NOT NULL,"
    " time_ms bigint NOT NULL, PRIMARY KEY (grp, event_id));"
    "CREATE INDEX IF NOT EXISTS citrus_processed_time ON citrus_processed (time_ms);"
    "CREATE TABLE IF NOT EXISTS citrus_notifications ("
    " id bigserial PRIMARY KEY, time_ms bigint NOT NULL, event_id text NOT NULL,"
    " source text COLLATE \"C\" NOT NULL, type text COLLATE \"C\" NOT NULL,"
    " severity text COLLATE \"C\" NOT NULL, subject text NOT NULL,"
    " correlation_id text NOT NULL, data text NOT NULL);"
    "CREATE INDEX IF NOT EXISTS citrus_notifications_time ON citrus_notifications (time_ms);"
    "CREATE INDEX IF NOT EXISTS citrus_notifications_source ON citrus_notifications (source, id);"
    "CREATE INDEX IF NOT EXISTS citrus_notifications_type ON citrus_notifications (type, id);"
    "CREATE INDEX IF NOT EXISTS citrus_notifications_severity"
    " ON citrus_notifications (severity, id);"
    "CREATE TABLE IF NOT EXISTS citrus_manifests (id text PRIMARY KEY, body text NOT NULL,"
    " updated_ms bigint NOT NULL, version bigint NOT NULL);"
    /* the registration queue's (records/registrations.h) */
    "CREATE TABLE IF NOT EXISTS citrus_registrations ("
    " seq bigserial PRIMARY KEY, id text COLLATE \"C\" NOT NULL UNIQUE,"
    " business_id text COLLATE \"C\" NOT NULL, location_id text NOT NULL,"
    " business_type text NOT NULL, state text COLLATE \"C\" NOT NULL, attempts integer NOT NULL,"
    " last_error text NOT NULL, next_attempt_ms bigint NOT NULL, shard_id text NOT NULL,"
    " created_ms bigint NOT NULL, updated_ms bigint NOT NULL, finished_ms bigint NOT NULL);"
    "ALTER TABLE citrus_registrations"
    " ADD COLUMN IF NOT EXISTS drive_attempts integer NOT NULL DEFAULT 0;"
    "ALTER TABLE citrus_registrations"
    " ADD COLUMN IF NOT EXISTS correlation_id text NOT NULL DEFAULT '';"
    "CREATE INDEX IF NOT EXISTS citrus_registrations_state ON citrus_registrations (state, seq);"
    "CREATE INDEX IF NOT EXISTS citrus_registrations_business"
    " ON citrus_registrations (business_id, seq);"
    "CREATE INDEX IF NOT EXISTS citrus_registrations_finished"
    " ON citrus_registrations (finished_ms);"
    "COMMIT;";

/* Each session's settings (a new one after every reset). */
static const char session_sql[] =
    "SELECT set_config('statement_timeout', '" STATEMENT_TIMEOUT_MS "', false),"
    " CASE WHEN current_setting('synchronous_commit') = 'off'"
    " THEN set_config('synchronous_commit', 'on', false) END";

/* A batch's ids, ascending: the lock is taken before the first nextval
 * (the CTE's row comes first) and held until the batch commits. */
static const char ids_sql[] =
    "WITH l AS (SELECT pg_advisory_xact_lock(" AUDIT_LOCK_KEY "))"
    " SELECT nextval(pg_get_serial_sequence('citrus_audit', 'id')) FROM l,"
    " generate_series(1, $1::integer) ORDER BY 1";

/* Followed by one "($1, ..., $12)" per row, ids given. */
static const char insert_sql[] =
    "INSERT INTO citrus_audit (id, time_ms, principal, roles, auth_method, peer, method, route,"
    " action, target, correlation_id, status) VALUES ";

/* At most this many rows per INSERT (12 parameters each, of the 65535 a
 * statement may have). */
#define INSERT_CHUNK 512

/* The statuses of a batch: $1 the ids, $2 the statuses, as arrays; the
 * first status queued for an id wins, and only a row at 0 takes one. */
static const char finish_sql[] =
    "UPDATE citrus_audit a SET status = u.s FROM (SELECT DISTINCT ON (id) id, s"
    " FROM unnest($1::bigint[], $2::integer[]) WITH ORDINALITY AS u(id, s, ord)"
    " ORDER BY id, ord) u WHERE a.id = u.id AND a.status = 0";

typedef struct pg_records {
    records base;
    pthread_mutex_t mu; /* guards conn: one statement at a time */
    PGconn *conn;
} pg_records;

static pg_records *self(records *r)
{
    return (pg_records *)r;
}

/* CITRUS_EAUDIT with libpq's message, first line. */
static int unavailable(const char *what, const char *msg, errdetail *e)
{
    if (!msg || !*msg)
        msg = "unknown error";
    size_t len = strcspn(msg, "\r\n");
    return errdetail_set(e, CITRUS_EAUDIT, "records store (postgres) unavailable: %s: %.*s", what,
                         (int)len, msg);
}

static void quiet_notices(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

/* Session settings on a fresh (or reset) connection. */
static int session_init(PGconn *c, errdetail *e)
{
    PGresult *res = PQexec(c, session_sql);
    int rc = PQresultStatus(res) == PGRES_TUPLES_OK
                 ? 0
                 : unavailable("session", PQresultErrorMessage(res), e);
    PQclear(res);
    return rc;
}

/* Runs sql with text parameters (vals[i] NULL for SQL NULL); *res is the
 * result when it has status want. A broken connection is reset and the
 * statement tried once more. Called with mu held. */
static int run(pg_records *p, const char *what, const char *sql, int n, const char *const *vals,
               ExecStatusType want, PGresult **res, errdetail *e)
{
    *res = NULL;
    for (int attempt = 0;; attempt++) {
        if (PQstatus(p->conn) == CONNECTION_OK) {
            PGresult *r = PQexecParams(p->conn, sql, n, NULL, vals, NULL, NULL, 0);
            if (PQresultStatus(r) == want) {
                *res = r;
                return 0;
            }
            if (PQstatus(p->conn) == CONNECTION_OK) {
                /* The server answered with an error: not the connection's. */
                int rc = unavailable(what, PQresultErrorMessage(r), e);
                errdetail_sqlstate(e, PQresultErrorField(r, PG_DIAG_SQLSTATE));
                PQclear(r);
                return rc;
            }
            if (attempt > 0) {
                int rc = unavailable(what, PQerrorMessage(p->conn), e);
                PQclear(r);
                return rc;
            }
            PQclear(r);
        } else if (attempt > 0) {
            return unavailable(what, PQerrorMessage(p->conn), e);
        }
        /* Broken: one reconnect (bounded by connect_timeout). */
        PQreset(p->conn);
        if (PQstatus(p->conn) != CONNECTION_OK)
            return unavailable(what, PQerrorMessage(p->conn), e);
        int rc = session_init(p->conn, e);
        if (rc != 0)
            return rc;
        log_warn("records", "reconnected to the records store (postgres)", NULL);
    }
}

static int parse_i64(const char *s, int64_t *out)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    *out = v;
    return end != s && *end == '\0' ? 0 : -1;
}

/* Runs one statement inside the batch's transaction: no reset and retry
 * here (the transaction died with a broken connection). *res as run's. */
static int run_in_txn(pg_records *p, const char *what, const char *sql, int n,
                      const char *const *vals, ExecStatusType want, PGresult **res, errdetail *e)
{
    PGresult *r = PQexecParams(p->conn, sql, n, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) == want) {
        *res = r;
        return 0;
    }
    *res = NULL;
    bool up = PQstatus(p->conn) == CONNECTION_OK;
    int rc = unavailable(what, up ? PQresultErrorMessage(r) : PQerrorMessage(p->conn), e);
    if (up)
        errdetail_sqlstate(e, PQresultErrorField(r, PG_DIAG_SQLSTATE));
    PQclear(r);
    return rc;
}

/* Takes n ids for rows, ascending, into rows[i].id, under the advisory
 * lock (held to the commit: see the header). */
static int take_ids(pg_records *p, records_append *rows, size_t n, errdetail *e)
{
    char nbuf[24];
    snprintf(nbuf, sizeof(nbuf), "%zu", n);
    const char *vals[1] = {nbuf};
    PGresult *res;
    int rc = run_in_txn(p, "append", ids_sql, 1, vals, PGRES_TUPLES_OK, &res, e);
    if (rc != 0)
        return rc;
    if ((size_t)PQntuples(res) != n)
        rc = errdetail_set(e, CITRUS_EAUDIT, "records store (postgres): append got no ids");
    for (size_t i = 0; i < n && rc == 0; i++)
        if (parse_i64(PQgetvalue(res, (int)i, 0), &rows[i].id) != 0)
            rc = errdetail_set(e, CITRUS_EAUDIT, "records store (postgres): append got a bad id");
    PQclear(res);
    return rc;
}

/* Inserts rows[0..n) (n <= INSERT_CHUNK) with their ids, one statement. */
static int insert_rows(pg_records *p, const records_append *rows, size_t n, errdetail *e)
{
    enum { NPARAM = 12 }; /* id, time_ms, 9 texts, status */
    size_t sql_cap = sizeof(insert_sql) + n * (NPARAM * 18 + 8);
    char *sql = malloc(sql_cap);
    const char **vals = calloc(n * NPARAM, sizeof(*vals));
    char(*nums)[24] = calloc(n * 3, sizeof(*nums));
    if (!sql || !vals || !nums) {
        free(sql);
        free(vals);
        free(nums);
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    }
    size_t len = (size_t)snprintf(sql, sql_cap, "%s", insert_sql);
    for (size_t i = 0; i < n; i++) {
        size_t k = i * NPARAM + 1; /* its first placeholder */
        len += (size_t)snprintf(sql + len, sql_cap - len,
                                "%s($%zu::bigint, $%zu::bigint, $%zu, $%zu, $%zu, $%zu, $%zu, $%zu,"
                                " $%zu, $%zu, $%zu, $%zu::integer)",
                                i ? ", " : "", k, k + 1, k + 2, k + 3, k + 4, k + 5, k + 6, k + 7,
                                k + 8, k + 9, k + 10, k + 11);
        const char **v = vals + i * NPARAM;
        snprintf(nums[i * 3], sizeof(nums[0]), "%lld", (long long)rows[i].id);
        snprintf(nums[i * 3 + 1], sizeof(nums[0]), "%lld", (long long)rows[i].time_ms);
        snprintf(nums[i * 3 + 2], sizeof(nums[0]), "%d", rows[i].status);
        v[0] = nums[i * 3];
        v[1] = nums[i * 3 + 1];
        for (int t = 0; t < RECORDS_AUDIT_NTEXT; t++)
            v[2 + t] =
                rows[i].t->v[t]; /* principal .. target, correlation_id: the columns' order */
        v[11] = nums[i * 3 + 2];
    }
    PGresult *res;
    int rc = run_in_txn(p, "append", sql, (int)(n * NPARAM), vals, PGRES_COMMAND_OK, &res, e);
    PQclear(res);
    free(sql);
    free(vals);
    free(nums);
    return rc;
}

/* "{a,b,...}": the ids (ids) or else the statuses of fin[0..count); NULL
 * when out of memory. */
static char *int_array(size_t count, const records_finish *fin, bool ids)
{
    size_t cap = count * 22 + 3;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    size_t len = 0;
    buf[len++] = '{';
    for (size_t i = 0; i < count; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%lld", i ? "," : "",
                                ids ? (long long)fin[i].id : (long long)fin[i].status);
    snprintf(buf + len, cap - len, "}");
    return buf;
}

/* Sets the queued statuses, one statement. */
static int set_statuses(pg_records *p, const records_finish *fin, size_t nfin, errdetail *e)
{
    char *ids = int_array(nfin, fin, true);
    char *sts = int_array(nfin, fin, false);
    int rc;
    if (!ids || !sts) {
        rc = errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    } else {
        const char *vals[2] = {ids, sts};
        PGresult *res;
        rc = run_in_txn(p, "finish", finish_sql, 2, vals, PGRES_COMMAND_OK, &res, e);
        PQclear(res);
    }
    free(ids);
    free(sts);
    return rc;
}

/* The whole batch in one transaction: BEGIN (which resets a broken
 * connection first, as run does), the ids, the rows, the statuses,
 * COMMIT. A failure rolls back what the server still holds. */
static int pg_write_batch(records *r, records_append *rows, size_t n, const records_finish *fin,
                          size_t nfin, errdetail *e)
{
    pg_records *p = self(r);
    pthread_mutex_lock(&p->mu);
    PGresult *res;
    int rc = run(p, "begin", "BEGIN", 0, NULL, PGRES_COMMAND_OK, &res, e);
    PQclear(res);
    if (rc == 0 && n > 0)
        rc = take_ids(p, rows, n, e);
    for (size_t i = 0; i < n && rc == 0; i += INSERT_CHUNK)
        rc = insert_rows(p, rows + i, n - i < INSERT_CHUNK ? n - i : INSERT_CHUNK, e);
    if (rc == 0 && nfin > 0)
        rc = set_statuses(p, fin, nfin, e);
    if (rc == 0) {
        rc = run_in_txn(p, "commit", "COMMIT", 0, NULL, PGRES_COMMAND_OK, &res, e);
        PQclear(res);
    }
    if (rc != 0 && PQstatus(p->conn) == CONNECTION_OK &&
        PQtransactionStatus(p->conn) != PQTRANS_IDLE)
        PQclear(PQexec(p->conn, "ROLLBACK"));
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* Runs sql with the parameters of a query (numbers as decimal text) under
 * the store's lock: run's answer. */
static int run_params(pg_records *p, const char *what, const char *sql, const records_param *prm,
                      int np, ExecStatusType want, PGresult **res, errdetail *e)
{
    char nums[RECORDS_MAX_PARAMS][24];
    const char *vals[RECORDS_MAX_PARAMS];
    if (np > RECORDS_MAX_PARAMS)
        return errdetail_set(e, CITRUS_EINVAL, "%s: too many parameters", what);
    for (int i = 0; i < np; i++) {
        if (prm[i].is_int) {
            snprintf(nums[i], sizeof(nums[i]), "%lld", (long long)prm[i].i);
            vals[i] = nums[i];
        } else {
            vals[i] = prm[i].s;
        }
    }
    pthread_mutex_lock(&p->mu);
    int rc = run(p, what, sql, np, vals, want, res, e);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static int pg_query(records *r, const records_filter *f, audit_row *rows, size_t *n, errdetail *e)
{
    PGresult *res;
    int rc = run_params(self(r), "query", f->sql, f->p, f->np, PGRES_TUPLES_OK, &res, e);
    if (rc != 0)
        return rc;
    int nt = PQntuples(res);
    for (int i = 0; i < nt && (size_t)i <= f->limit && rc == 0; i++) {
        int64_t id = 0, time_ms = 0;
        if (parse_i64(PQgetvalue(res, i, 0), &id) != 0 ||
            parse_i64(PQgetvalue(res, i, 1), &time_ms) != 0) {
            rc = errdetail_set(e, CITRUS_EAUDIT, "records store (postgres): bad row");
            break;
        }
        const char *text[RECORDS_AUDIT_NTEXT];
        for (int c = 2; c <= 9; c++)
            text[c - 2] = PQgetvalue(res, i, c);
        text[8] = PQgetvalue(res, i, 11);
        rc = records_row_set(&rows[*n], id, time_ms, text, atoi(PQgetvalue(res, i, 10)), e);
        (*n)++;
    }
    PQclear(res);
    return rc;
}

static int pg_purge_batch(records *r, int64_t before_ms, int64_t *deleted, errdetail *e)
{
    pg_records *p = self(r);
    char tbuf[24];
    snprintf(tbuf, sizeof(tbuf), "%lld", (long long)before_ms);
    const char *vals[1] = {tbuf};
    pthread_mutex_lock(&p->mu);
    PGresult *res;
    int rc = run(p, "purge", RECORDS_PURGE_SQL("$1"), 1, vals, PGRES_COMMAND_OK, &res, e);
    if (rc == 0)
        *deleted = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static int pg_processed_seen(records *r, const char *group, const char *id, bool *seen,
                             errdetail *e)
{
    pg_records *p = self(r);
    const char *vals[2] = {group, id};
    pthread_mutex_lock(&p->mu);
    PGresult *res;
    int rc = run(p, "ledger", "SELECT 1 FROM citrus_processed WHERE grp = $1 AND event_id = $2", 2,
                 vals, PGRES_TUPLES_OK, &res, e);
    *seen = rc == 0 && PQntuples(res) > 0;
    PQclear(res);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* One entry inside the transaction: its ledger row (ON CONFLICT DO
 * NOTHING: a concurrent insert of the same key waits for the other
 * transaction and then inserts nothing) and its notification when new. */
static int pg_entry(pg_records *p, processed_entry *en, errdetail *e)
{
    char tbuf[24];
    snprintf(tbuf, sizeof(tbuf), "%lld", (long long)en->time_ms);
    const char *lv[3] = {en->group, en->event_id, tbuf};
    PGresult *res;
    int rc = run_in_txn(p, "ledger",
                        "INSERT INTO citrus_processed (grp, event_id, time_ms)"
                        " VALUES ($1, $2, $3::bigint) ON CONFLICT DO NOTHING",
                        3, lv, PGRES_COMMAND_OK, &res, e);
    if (rc != 0)
        return rc;
    en->duplicate = strcmp(PQcmdTuples(res), "1") != 0;
    PQclear(res);
    const notification_row *n = en->notification;
    if (en->duplicate || !n)
        return 0;
    snprintf(tbuf, sizeof(tbuf), "%lld", (long long)n->time_ms);
    const char *nv[8] = {tbuf,        n->event_id, n->source,         n->type,
                         n->severity, n->subject,  n->correlation_id, n->data};
    rc = run_in_txn(
        p, "notification",
        "INSERT INTO citrus_notifications (time_ms, event_id, source, type, severity,"
        " subject, correlation_id, data) VALUES ($1::bigint, $2, $3, $4, $5, $6, $7, $8)",
        8, nv, PGRES_COMMAND_OK, &res, e);
    PQclear(res);
    return rc;
}

/* The batch in one transaction. With a notification in it, the
 * notifications' advisory lock first (held to the commit), so their ids
 * become visible in increasing order, as the audit rows' do. */
static int pg_processed_record(records *r, processed_entry *entries, size_t n, errdetail *e)
{
    pg_records *p = self(r);
    bool notify = false;
    for (size_t i = 0; i < n; i++)
        notify |= entries[i].notification != NULL;
    pthread_mutex_lock(&p->mu);
    PGresult *res;
    int rc = run(p, "begin", "BEGIN", 0, NULL, PGRES_COMMAND_OK, &res, e);
    PQclear(res);
    if (rc == 0 && notify) {
        rc = run_in_txn(p, "ledger", "SELECT pg_advisory_xact_lock(" NOTIFY_LOCK_KEY ")", 0, NULL,
                        PGRES_TUPLES_OK, &res, e);
        PQclear(res);
    }
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = pg_entry(p, &entries[i], e);
    if (rc == 0) {
        rc = run_in_txn(p, "commit", "COMMIT", 0, NULL, PGRES_COMMAND_OK, &res, e);
        PQclear(res);
    }
    if (rc != 0 && PQstatus(p->conn) == CONNECTION_OK &&
        PQtransactionStatus(p->conn) != PQTRANS_IDLE)
        PQclear(PQexec(p->conn, "ROLLBACK"));
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static int pg_notify_query(records *r, const records_filter *f, notification_row *rows, size_t *n,
                           errdetail *e)
{
    PGresult *res;
    int rc = run_params(self(r), "query", f->sql, f->p, f->np, PGRES_TUPLES_OK, &res, e);
    if (rc != 0)
        return rc;
    int nt = PQntuples(res);
    for (int i = 0; i < nt && (size_t)i <= f->limit && rc == 0; i++) {
        int64_t id = 0, time_ms = 0;
        if (parse_i64(PQgetvalue(res, i, 0), &id) != 0 ||
            parse_i64(PQgetvalue(res, i, 1), &time_ms) != 0) {
            rc = errdetail_set(e, CITRUS_EAUDIT, "records store (postgres): bad row");
            break;
        }
        const char *text[RECORDS_NOTIFY_NTEXT];
        for (int c = 0; c < RECORDS_NOTIFY_NTEXT; c++)
            text[c] = PQgetvalue(res, i, c + 2);
        rc = records_notification_set(&rows[*n], id, time_ms, text, e);
        (*n)++;
    }
    PQclear(res);
    return rc;
}

static int pg_purge_sql(records *r, const char *sql, int64_t before_ms, int64_t *deleted,
                        errdetail *e)
{
    pg_records *p = self(r);
    char tbuf[24];
    snprintf(tbuf, sizeof(tbuf), "%lld", (long long)before_ms);
    const char *vals[1] = {tbuf};
    pthread_mutex_lock(&p->mu);
    PGresult *res;
    int rc = run(p, "purge", sql, 1, vals, PGRES_COMMAND_OK, &res, e);
    if (rc == 0)
        *deleted = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static int pg_manifest_put(records *r, const char *id, const char *body, int64_t time_ms,
                           bool *created, int64_t *version, errdetail *e)
{
    pg_records *p = self(r);
    char tbuf[24];
    snprintf(tbuf, sizeof(tbuf), "%lld", (long long)time_ms);
    const char *vals[3] = {id, body, tbuf};
    pthread_mutex_lock(&p->mu);
    PGresult *res;
    int rc = run(p, "manifest",
                 "INSERT INTO citrus_manifests (id, body, updated_ms, version)"
                 " VALUES ($1, $2, $3::bigint, 1) ON CONFLICT (id) DO UPDATE SET"
                 " body = excluded.body, updated_ms = excluded.updated_ms,"
                 " version = citrus_manifests.version + 1 RETURNING version",
                 3, vals, PGRES_TUPLES_OK, &res, e);
    if (rc == 0 && (PQntuples(res) != 1 || parse_i64(PQgetvalue(res, 0, 0), version) != 0))
        rc = errdetail_set(e, CITRUS_EAUDIT, "records store (postgres): bad manifest version");
    if (rc == 0)
        *created = *version == 1;
    PQclear(res);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static int pg_manifest_get(records *r, const char *id, manifest_row *out, errdetail *e)
{
    pg_records *p = self(r);
    const char *vals[1] = {id};
    pthread_mutex_lock(&p->mu);
    PGresult *res;
    int rc =
        run(p, "manifest", "SELECT body, updated_ms, version FROM citrus_manifests WHERE id = $1",
            1, vals, PGRES_TUPLES_OK, &res, e);
    pthread_mutex_unlock(&p->mu);
    if (rc == 0 && PQntuples(res) == 0)
        rc = errdetail_set(e, CITRUS_ENOTFOUND, "no manifest %s", id);
    if (rc == 0 && (parse_i64(PQgetvalue(res, 0, 1), &out->updated_ms) != 0 ||
                    parse_i64(PQgetvalue(res, 0, 2), &out->version) != 0))
        rc = errdetail_set(e, CITRUS_EAUDIT, "records store (postgres): bad manifest row");
    if (rc == 0 && !(out->body = strdup(PQgetvalue(res, 0, 0))))
        rc = errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    PQclear(res);
    return rc;
}

static int pg_exec(records *r, const char *sql, const records_param *prm, int np, int ncols,
                   size_t max_rows, char **cells, size_t *nrows, int64_t *changes, errdetail *e)
{
    *nrows = 0;
    *changes = 0;
    PGresult *res;
    int rc = run_params(self(r), "registrations", sql, prm, np,
                        ncols > 0 ? PGRES_TUPLES_OK : PGRES_COMMAND_OK, &res, e);
    if (rc != 0)
        return rc;
    if (ncols > 0) {
        int nt = PQntuples(res);
        for (int i = 0; i < nt && (size_t)i < max_rows && rc == 0; i++) {
            for (int c = 0; c < ncols && rc == 0; c++) {
                if (PQgetisnull(res, i, c))
                    continue;
                if (!(cells[(size_t)i * (size_t)ncols + (size_t)c] = strdup(PQgetvalue(res, i, c))))
                    rc = errdetail_set(e, CITRUS_ENOMEM, "out of memory");
            }
            (*nrows)++;
        }
    } else {
        *changes = strtoll(PQcmdTuples(res), NULL, 10);
    }
    PQclear(res);
    return rc;
}

static void pg_close(records *r)
{
    pg_records *p = self(r);
    if (p->conn)
        PQfinish(p->conn);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static const records_ops pg_ops = {
    .name = "postgres",
    .placeholder = '$',
    .write_batch = pg_write_batch,
    .query = pg_query,
    .purge_batch = pg_purge_batch,
    .processed_seen = pg_processed_seen,
    .processed_record = pg_processed_record,
    .notify_query = pg_notify_query,
    .purge_sql = pg_purge_sql,
    .manifest_put = pg_manifest_put,
    .manifest_get = pg_manifest_get,
    .exec = pg_exec,
    .close = pg_close,
};

/* Connects with the DSN's own settings plus ours: client_encoding UTF8
 * always (our text is UTF-8), connect_timeout and tcp_user_timeout unless
 * the DSN sets them. */
static int pg_dial(const char *dsn, PGconn **out, errdetail *e)
{
    *out = NULL;
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn, &perr);
    if (!opts) {
        /* libpq's message may quote the DSN, password and all: not shown. */
        PQfreemem(perr);
        return errdetail_set(e, CITRUS_EINVAL, "records store (postgres): malformed DSN");
    }
    const char *keys[MAX_KEYWORDS + 1], *vals[MAX_KEYWORDS + 1];
    size_t n = 0;
    bool has_timeout = false, has_user_timeout = false, has_app = false;
    for (PQconninfoOption *o = opts; o->keyword && n < MAX_KEYWORDS - 4; o++) {
        if (!o->val || strcmp(o->keyword, "client_encoding") == 0)
            continue;
        has_timeout |= strcmp(o->keyword, "connect_timeout") == 0;
        has_user_timeout |= strcmp(o->keyword, "tcp_user_timeout") == 0;
        has_app |= strcmp(o->keyword, "application_name") == 0;
        keys[n] = o->keyword;
        vals[n++] = o->val;
    }
    keys[n] = "client_encoding";
    vals[n++] = "UTF8";
    if (!has_timeout) {
        keys[n] = "connect_timeout";
        vals[n++] = CONNECT_TIMEOUT_S;
    }
    if (!has_user_timeout) {
        keys[n] = "tcp_user_timeout";
        vals[n++] = TCP_USER_TIMEOUT_MS;
    }
    if (!has_app) {
        keys[n] = "application_name";
        vals[n++] = "citrus-records";
    }
    keys[n] = vals[n] = NULL;
    PGconn *c = PQconnectdbParams(keys, vals, 0);
    PQconninfoFree(opts);
    if (!c)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    if (PQstatus(c) != CONNECTION_OK) {
        int rc = unavailable("connect", PQerrorMessage(c), e);
        PQfinish(c);
        return rc;
    }
    PQsetNoticeProcessor(c, quiet_notices, NULL);
    *out = c;
    return 0;
}

int records_open_postgres(const char *dsn, records **out, errdetail *e)
{
    *out = NULL;
    if (!dsn || !*dsn)
        return errdetail_set(e, CITRUS_EINVAL, "records store (postgres): no DSN");
    pg_records *p = calloc(1, sizeof(*p));
    if (!p)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    p->base.ops = &pg_ops;
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p);
        return errdetail_set(e, CITRUS_ENOMEM, "records store: mutex");
    }
    int rc = pg_dial(dsn, &p->conn, e);
    if (rc == 0)
        rc = session_init(p->conn, e);
    if (rc == 0) {
        PGresult *res = PQexec(p->conn, schema_sql);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            rc = unavailable("creating citrus_audit", PQresultErrorMessage(res), e);
        PQclear(res);
    }
    if (rc == 0)
        rc = records_start(&p->base, e);
    if (rc != 0) {
        pg_close(&p->base);
        return rc;
    }
    *out = &p->base;
    return 0;
}
