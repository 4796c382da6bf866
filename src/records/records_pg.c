/* records/records_pg.c — the records store on PostgreSQL, for clusters:
 * every node appends to one table, citrus_audit, created when missing.
 *
 * One libpq connection under a mutex; every statement goes through
 * PQexecParams with text parameters (values are never part of the SQL).
 * A statement that fails on a broken connection (PQstatus CONNECTION_BAD:
 * the server restarted, the network dropped) is retried once after
 * PQreset; if that fails too the call is CITRUS_EAUDIT. (An append whose
 * answer was lost with the connection may so be written twice: a duplicate
 * audit row is better than a missing one.)
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
 * Ids: a bigserial, taken under a transaction-scoped advisory lock held to
 * the commit, so ids become visible in increasing order even with several
 * nodes appending: a reader paging with after_id never passes an id whose
 * row commits later.
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
#include "records/records.h"
#include "records/records_ops.h"

#define CONNECT_TIMEOUT_S "3"
#define TCP_USER_TIMEOUT_MS "10000"
#define STATEMENT_TIMEOUT_MS "10000"
#define MAX_KEYWORDS 64
/* The advisory lock key of citrus_audit's appends (and of its creation):
 * any constant no other code uses; this is "citaudit" in ASCII. */
#define AUDIT_LOCK_KEY "7595434211513689460"

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
    "COMMIT;";

/* Each session's settings (a new one after every reset). */
static const char session_sql[] =
    "SELECT set_config('statement_timeout', '" STATEMENT_TIMEOUT_MS "', false),"
    " CASE WHEN current_setting('synchronous_commit') = 'off'"
    " THEN set_config('synchronous_commit', 'on', false) END";

/* One statement, so one implicit transaction: the lock is taken before
 * nextval and held until the row commits. */
static const char append_sql[] =
    "WITH l AS (SELECT pg_advisory_xact_lock(" AUDIT_LOCK_KEY "))"
    " INSERT INTO citrus_audit (time_ms, principal, roles, auth_method, peer, method, route,"
    " action, target, correlation_id, status)"
    " SELECT $1::bigint, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::integer FROM l RETURNING id";

static const char finish_sql[] =
    "WITH u AS (UPDATE citrus_audit SET status = $2::integer WHERE id = $1::bigint AND status = 0"
    " RETURNING status)"
    " SELECT status FROM u UNION ALL SELECT status FROM citrus_audit WHERE id = $1::bigint"
    " AND NOT EXISTS (SELECT 1 FROM u)";

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

static int pg_append(records *r, int64_t time_ms, const records_text *t, int status, int64_t *id,
                     errdetail *e)
{
    pg_records *p = self(r);
    char tbuf[24], sbuf[16];
    snprintf(tbuf, sizeof(tbuf), "%lld", (long long)time_ms);
    snprintf(sbuf, sizeof(sbuf), "%d", status);
    const char *vals[11] = {tbuf};
    for (int i = 0; i < RECORDS_AUDIT_NTEXT; i++)
        vals[i + 1] = t->v[i];
    vals[10] = sbuf;
    pthread_mutex_lock(&p->mu);
    PGresult *res;
    int rc = run(p, "append", append_sql, 11, vals, PGRES_TUPLES_OK, &res, e);
    if (rc == 0 && (PQntuples(res) != 1 || parse_i64(PQgetvalue(res, 0, 0), id) != 0))
        rc = errdetail_set(e, CITRUS_EAUDIT, "records store (postgres): append returned no id");
    PQclear(res);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static int pg_finish(records *r, int64_t id, int status, bool *found, int *current, errdetail *e)
{
    pg_records *p = self(r);
    char ibuf[24], sbuf[16];
    snprintf(ibuf, sizeof(ibuf), "%lld", (long long)id);
    snprintf(sbuf, sizeof(sbuf), "%d", status);
    const char *vals[2] = {ibuf, sbuf};
    pthread_mutex_lock(&p->mu);
    PGresult *res;
    int rc = run(p, "finish", finish_sql, 2, vals, PGRES_TUPLES_OK, &res, e);
    if (rc == 0 && PQntuples(res) == 1) {
        *found = true;
        *current = atoi(PQgetvalue(res, 0, 0));
    }
    PQclear(res);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static int pg_query(records *r, const records_filter *f, audit_row *rows, size_t *n, errdetail *e)
{
    pg_records *p = self(r);
    char nums[RECORDS_MAX_PARAMS][24];
    const char *vals[RECORDS_MAX_PARAMS];
    for (int i = 0; i < f->np; i++) {
        if (f->p[i].is_int) {
            snprintf(nums[i], sizeof(nums[i]), "%lld", (long long)f->p[i].i);
            vals[i] = nums[i];
        } else {
            vals[i] = f->p[i].s;
        }
    }
    pthread_mutex_lock(&p->mu);
    PGresult *res;
    int rc = run(p, "query", f->sql, f->np, vals, PGRES_TUPLES_OK, &res, e);
    pthread_mutex_unlock(&p->mu);
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
    .append = pg_append,
    .finish = pg_finish,
    .query = pg_query,
    .purge_batch = pg_purge_batch,
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
    if (rc != 0) {
        pg_close(&p->base);
        return rc;
    }
    *out = &p->base;
    return 0;
}
