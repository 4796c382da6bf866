/* dbconn/driver_pg.c — the PostgreSQL (libpq) backend of the shard driver:
 * its drv_ops table (see driver_ops.h; driver.c checks the arguments and
 * dispatches here).
 *
 * Connecting: pg_connect, with client_encoding=UTF8 in place of the DSN's
 * (our TEXT values are UTF-8).
 *
 * Statements go through PQsendQueryParams (the extended protocol: one
 * statement, parameters never spliced), or, for a query or DML statement
 * on a connection with a statement cache (drv_set_statement_cache,
 * stmt_cache.c), prepared (PQsendPrepare) on its first run and run with
 * PQsendQueryPrepared after, which spares the server parsing and planning
 * it again each time;
 * either way with text-format parameters: INT in decimal, REAL with
 * %.17g (exact round trip; NaN/Infinity spelled as PostgreSQL does), BOOL
 * "t"/"f", TEXT as is (a NUL byte cannot travel in a PostgreSQL text and
 * is refused), BLOB as bytea hex "\x..." typed bytea (OID 17) explicitly;
 * everything else untyped (OID 0) for the server to infer. Results come back in text format, in
 * single-row mode so a huge result is never materialized, and are typed by column OID: int2/4/8 ->
 * INT, float4/8 -> REAL, numeric -> NUMERIC (exact text; NaN and Infinity -> TEXT), bool -> BOOL,
 * bytea -> BLOB (PQunescapeBytea), anything else TEXT.
 *
 * max_rows: past the limit the rest of the rows are read and dropped; a
 * statement that starts with SELECT, VALUES or TABLE run outside a
 * transaction is cancelled instead (PQcancel), which saves reading the
 * rest. Cancelling is never done inside a transaction (the error would
 * abort it) or for other statements (an INSERT ... RETURNING would be
 * rolled back). The cancel's "57014 canceling statement" answer is
 * expected and not an error. (A backend that receives a cancel after the
 * statement finished ignores it, so it cannot hit the next statement.)
 * Caveat: a SELECT calling functions that write would have those writes
 * rolled back when it is truncated in autocommit.
 *
 * Errors: an error result is CITRUS_EINVAL with the primary message (and
 * detail) and the SQLSTATE, unless the connection is gone: PQstatus not
 * OK, SQLSTATE class 08 (connection exception) except 08P01 (protocol
 * violation: what a wrong parameter count gives, on a healthy
 * connection), or 57P0x (the server is shutting down or the session was
 * terminated): then CITRUS_EUNAVAILABLE and the connection is marked
 * broken.
 *
 * Scripts (drv_run_script) go through PQsendQuery, the simple protocol,
 * which runs several statements separated by ";" and stops at the first
 * error; their rows are read and dropped.
 *
 * drv_exec runs without a time limit unless drv_set_statement_timeout set
 * one: then the answer is waited for on the socket up to that deadline (on
 * the connection's clock), a
 * cancel request is sent past it, and the server's answer (57014) is
 * awaited up to the open timeout more before the connection is given up.
 * (PQcancel connects to the server blocking; libpq 15 has no other way.)
 * A cancel check (drv_set_cancel_check) makes the wait poll the socket in
 * slices of DRV_CANCEL_CHECK_MS and ask it between them; a caller gone
 * cancels the statement the same way.
 * drv_set_deadline bounds all of these waits (and the ping) without
 * sending a cancel: past it the connection is given up.
 * drv_ping is bounded by the open timeout, and a ping that times out
 * leaves the connection broken (a statement still in flight). */
#include <errno.h>
#include <limits.h>
#include <libpq-fe.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "core/decimal.h"
#include "core/sqlword.h"
#include "dbconn/driver.h"
#include "dbconn/driver_ops.h"
#include "dbconn/pg_connect.h"
#include "dbconn/stmt_cache.h"

#define PG_MAX_PARAMS 65535
#define NUMBUF 32
#define PG_STMT_MAX_SQL 16384 /* longer statements run unnamed */

#define OID_BOOL 16
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_FLOAT4 700
#define OID_FLOAT8 701
#define OID_NUMERIC 1700

/* Lag 0 when the replica has replayed all it received; else the age of the
 * last transaction it replayed, or, when it has replayed none since it
 * started (a fresh standby still catching up), 10^12 ms: unknown, so too
 * far behind for any bound. */
static const char LAG_SQL[] =
    "SELECT pg_is_in_recovery(), "
    "CASE WHEN NOT pg_is_in_recovery() "
    "OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::bigint "
    "ELSE GREATEST(COALESCE(EXTRACT(EPOCH FROM (now() - pg_last_xact_replay_timestamp())) "
    "* 1000, 1e12), 0)::bigint END";

static PGconn *conn(drv_conn *c)
{
    return (PGconn *)c->handle;
}

/* Waits until PQgetResult would not block: 0, 1 when the deadline (on
 * c's clock) passed first, -1 when the connection failed. */
static int wait_busy(drv_conn *c, int64_t deadline)
{
    PGconn *pg = conn(c);
    while (PQisBusy(pg)) {
        int64_t wait = deadline - clock_mono_ms(c->clock);
        if (wait <= 0)
            return 1;
        struct pollfd p = {.fd = PQsocket(pg), .events = POLLIN};
        int n = poll(&p, 1, wait > INT_MAX ? INT_MAX : (int)wait);
        if ((n < 0 && errno != EINTR) || (n > 0 && !PQconsumeInput(pg)))
            return -1;
    }
    return 0;
}

static int pg_open(drv_conn *c, const char *dsn, const dsn_info *info, bool create, errdetail *e)
{
    PGconn *pg;
    int rc = pg_connect(dsn, c->timeout_ms, &pg, e);
    c->handle = pg;
    return rc;
}

static void pg_close(drv_conn *c)
{
    if (c->handle)
        PQfinish(conn(c));
    c->handle = NULL;
}

static drv_tx_state pg_tx_state(drv_conn *c)
{
    switch (PQtransactionStatus(conn(c))) {
    case PQTRANS_INTRANS:
    case PQTRANS_ACTIVE:
        return DRV_TX_ACTIVE;
    case PQTRANS_INERROR:
        return DRV_TX_FAILED;
    default:
        return DRV_TX_IDLE;
    }
}

/* Whether an error with this SQLSTATE means the session is gone. */
static bool state_is_gone(const char *state)
{
    if (!state)
        return false;
    if (strncmp(state, "08", 2) == 0)
        return strcmp(state, "08P01") != 0;
    return strncmp(state, "57P0", 4) == 0;
}

/* An error result (r may be NULL: libpq's connection message). */
static int fail_result(drv_conn *c, const PGresult *r, errdetail *e)
{
    PGconn *pg = conn(c);
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    int rc = CITRUS_EINVAL;
    if (PQstatus(pg) != CONNECTION_OK || state_is_gone(state)) {
        c->broken = true;
        rc = CITRUS_EUNAVAILABLE;
    }
    if (!primary) {
        const char *msg = r ? PQresultErrorMessage(r) : NULL;
        pg_message(e, rc, "", msg && *msg ? msg : PQerrorMessage(pg));
    } else {
        const char *detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
        errdetail_set(e, rc, "%s%s%s", primary, detail ? ": " : "", detail ? detail : "");
    }
    errdetail_sqlstate(e, state);
    return rc;
}

/* ---- parameters ------------------------------------------------------------- */

typedef struct pg_params {
    const char **vals;
    Oid *types;
    char *nums;   /* NUMBUF per parameter, for INT and REAL */
    char **blobs; /* hex text per BLOB parameter, owned */
    size_t n;
} pg_params;

static void params_free(pg_params *pp)
{
    if (pp->blobs)
        for (size_t i = 0; i < pp->n; i++)
            free(pp->blobs[i]);
    free(pp->blobs);
    free(pp->nums);
    free(pp->types);
    free(pp->vals);
}

static char *bytea_hex(const unsigned char *p, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char *s = malloc(2 * len + 3);
    if (!s)
        return NULL;
    char *o = s;
    *o++ = '\\';
    *o++ = 'x';
    for (size_t i = 0; i < len; i++) {
        *o++ = hex[p[i] >> 4];
        *o++ = hex[p[i] & 15];
    }
    *o = '\0';
    return s;
}

static int params_make(pg_params *pp, const value *params, size_t n, errdetail *e)
{
    memset(pp, 0, sizeof(*pp));
    if (n == 0)
        return 0;
    if (n > PG_MAX_PARAMS)
        return errdetail_set(e, CITRUS_EINVAL, "too many parameters (%zu; at most %d)", n,
                             PG_MAX_PARAMS);
    pp->n = n;
    pp->vals = calloc(n, sizeof(*pp->vals));
    pp->types = calloc(n, sizeof(*pp->types));
    pp->nums = calloc(n, NUMBUF);
    pp->blobs = calloc(n, sizeof(*pp->blobs));
    if (!pp->vals || !pp->types || !pp->nums || !pp->blobs)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const value *v = &params[i];
        char *num = pp->nums + i * NUMBUF;
        switch (v->type) {
        case VAL_INT:
            snprintf(num, NUMBUF, "%lld", (long long)v->u.i);
            pp->vals[i] = num;
            break;
        case VAL_REAL:
            if (isnan(v->u.d))
                snprintf(num, NUMBUF, "NaN");
            else if (isinf(v->u.d))
                snprintf(num, NUMBUF, "%sInfinity", v->u.d < 0 ? "-" : "");
            else
                snprintf(num, NUMBUF, "%.17g", v->u.d);
            pp->vals[i] = num;
            break;
        case VAL_BOOL:
            pp->vals[i] = v->u.b ? "t" : "f";
            break;
        case VAL_TEXT:
            if (v->u.s.len && memchr(v->u.s.p, '\0', v->u.s.len)) {
                errdetail_set(e, CITRUS_EINVAL,
                              "parameter $%zu: a PostgreSQL text cannot hold a NUL byte", i + 1);
                errdetail_sqlstate(e, "22021");
                return CITRUS_EINVAL;
            }
            pp->vals[i] = v->u.s.p ? v->u.s.p : "";
            break;
        case VAL_NUMERIC: /* its text, for the server to infer */
            pp->vals[i] = v->u.s.p;
            break;
        case VAL_BLOB:
            pp->blobs[i] = bytea_hex((const unsigned char *)v->u.s.p, v->u.s.p ? v->u.s.len : 0);
            if (!pp->blobs[i])
                return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
            pp->vals[i] = pp->blobs[i];
            pp->types[i] = OID_BYTEA;
            break;
        default:
            pp->vals[i] = NULL; /* SQL NULL */
            break;
        }
    }
    return 0;
}

/* ---- results ------------------------------------------------------------------- */

static int cell(const PGresult *r, int row, int col, value *out)
{
    if (PQgetisnull(r, row, col)) {
        *out = val_null();
        return 0;
    }
    const char *s = PQgetvalue(r, row, col);
    size_t len = (size_t)PQgetlength(r, row, col);
    char *end;
    switch (PQftype(r, col)) {
    case OID_INT2:
    case OID_INT4:
    case OID_INT8: {
        errno = 0;
        long long i = strtoll(s, &end, 10);
        if (errno == 0 && end != s && *end == '\0') {
            *out = val_int(i);
            return 0;
        }
        break; /* cannot happen; keep the text */
    }
    case OID_FLOAT4:
    case OID_FLOAT8: {
        double d = strtod(s, &end); /* also reads NaN, Infinity, -Infinity */
        if (end != s && *end == '\0') {
            *out = val_real(d);
            return 0;
        }
        break;
    }
    case OID_NUMERIC:
        if (dec_valid(s, len)) { /* not NaN, Infinity */
            *out = val_numeric(s, len);
            return val_ok(out, VAL_NUMERIC) ? 0 : CITRUS_ENOMEM;
        }
        break;
    case OID_BOOL:
        *out = val_bool(s[0] == 't');
        return 0;
    case OID_BYTEA: {
        size_t n = 0;
        unsigned char *b = PQunescapeBytea((const unsigned char *)s, &n);
        if (!b)
            return CITRUS_ENOMEM;
        *out = val_blob(b, n);
        PQfreemem(b);
        return val_ok(out, VAL_BLOB) ? 0 : CITRUS_ENOMEM;
    }
    default:
        break;
    }
    *out = val_text(s, len);
    return val_ok(out, VAL_TEXT) ? 0 : CITRUS_ENOMEM;
}

static int set_columns(const PGresult *r, result_set *out)
{
    int n = PQnfields(r);
    if (n <= 0)
        return 0;
    const char **names = calloc((size_t)n, sizeof(*names));
    if (!names)
        return CITRUS_ENOMEM;
    for (int i = 0; i < n; i++)
        names[i] = PQfname(r, i);
    int rc = rs_set_columns(out, names, (size_t)n);
    free(names);
    return rc;
}

static int append_rows(const PGresult *r, size_t max_rows, result_set *out, bool *truncated)
{
    int ncols = PQnfields(r), nrows = PQntuples(r);
    if (ncols <= 0 || nrows <= 0)
        return 0;
    value *row = calloc((size_t)ncols, sizeof(*row));
    if (!row)
        return CITRUS_ENOMEM;
    int rc = 0;
    for (int i = 0; i < nrows && rc == 0; i++) {
        if (max_rows && out->nrows >= max_rows) {
            *truncated = true;
            break;
        }
        for (int j = 0; j < ncols && rc == 0; j++)
            rc = cell(r, i, j, &row[j]);
        if (rc == 0)
            rc = rs_append_row(out, row);
        for (int j = 0; j < ncols; j++)
            val_free(&row[j]);
    }
    free(row);
    return rc;
}

/* Rows changed, from the command tag of an INSERT/UPDATE/DELETE/MERGE. */
static int64_t tag_changes(const PGresult *r)
{
    const char *tag = PQcmdStatus((PGresult *)r);
    if (!tag || !(strncmp(tag, "INSERT ", 7) == 0 || strncmp(tag, "UPDATE ", 7) == 0 ||
                  strncmp(tag, "DELETE ", 7) == 0 || strncmp(tag, "MERGE ", 6) == 0))
        return 0;
    return strtoll(PQcmdTuples((PGresult *)r), NULL, 10);
}

/* A query whose cancellation loses nothing: SELECT, VALUES or TABLE. */
static bool is_plain_query(const char *sql)
{
    static const char *const words[] = {"select", "values", "table"};
    return sql_first_word_in(sql, words, sizeof(words) / sizeof(words[0]));
}

/* A statement worth a named prepared statement: the queries and the DML
 * an application runs over and over (not DDL, SET, or the like). */
static bool is_cacheable(const char *sql)
{
    static const char *const words[] = {"select", "insert", "update", "delete",
                                        "with",   "values", "table",  "merge"};
    return strlen(sql) <= PG_STMT_MAX_SQL &&
           sql_first_word_in(sql, words, sizeof(words) / sizeof(words[0]));
}

static void cancel_query(PGconn *pg)
{
    PGcancel *k = PQgetCancel(pg);
    if (!k)
        return;
    char buf[256];
    PQcancel(k, buf, (int)sizeof(buf)); /* failure: we read the rest instead */
    PQfreeCancel(k);
}

/* ---- prepared statements ------------------------------------------------------- */

/* Why running a named statement failed, when that is the statement's
 * fault rather than the query's. */
typedef enum { STALE_NO, STALE_GONE, STALE_PLAN } stale_t;

static stale_t stale_kind(const PGresult *r)
{
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    if (!state)
        return STALE_NO;
    if (strcmp(state, "26000") == 0) /* invalid_sql_statement_name */
        return STALE_GONE;
    if (strcmp(state, "0A000") == 0 && msg && strstr(msg, "cached plan must not change"))
        return STALE_PLAN;
    return STALE_NO;
}

/* Why we cancelled the running statement (PG_RUNNING: we did not). */
typedef enum { PG_RUNNING, PG_TIMED_OUT, PG_ABANDONED, PG_DEADLINE } pg_cancel_why;

/* A statement's limits as it runs: the deadline of
 * drv_set_statement_timeout (0: none), when drv_set_cancel_check's check
 * is due next (0: no check), drv_set_deadline's hard deadline (0: none;
 * past it the connection is given up without a cancel: PG_DEADLINE), and
 * whether we cancelled it and why. */
typedef struct pg_clock {
    int64_t deadline;
    int64_t next_check;
    int64_t hard;
    pg_cancel_why cancelled;
} pg_clock;

/* Cancels the running statement for why; its answer is awaited up to the
 * open timeout from now, with no more checks. */
static void cancel_for(drv_conn *c, pg_clock *k, pg_cancel_why why)
{
    cancel_query(conn(c));
    k->cancelled = why;
    k->deadline = clock_mono_ms(c->clock) + c->timeout_ms;
    k->next_check = 0;
}

/* Waits until PQgetResult would not block, up to k's deadline, running the
 * cancel check when it is due. Past the deadline, or when the check says
 * the caller is gone, the statement is cancelled once and the deadline
 * moves on by the open timeout for the server's answer to that. 0, or -1
 * when the connection failed or did not answer the cancel either (then
 * broken). */
static int wait_result(drv_conn *c, pg_clock *k)
{
    if (!k->deadline && !k->next_check && !k->hard)
        return 0;
    for (;;) {
        int64_t until = k->deadline ? k->deadline : INT64_MAX;
        if (k->next_check && k->next_check < until)
            until = k->next_check;
        if (k->hard && k->hard < until)
            until = k->hard;
        int w = wait_busy(c, until);
        if (w == 0)
            return 0;
        if (w < 0)
            break;
        int64_t now = clock_mono_ms(c->clock);
        bool timed_out = k->deadline && now >= k->deadline;
        bool abandoned = !timed_out && c->cancel_fn && c->cancel_fn(c->cancel_ctx);
        if (k->hard && (now >= k->hard || timed_out || abandoned)) {
            /* no cancel under a hard deadline: PQcancel would block on a
             * server that does not answer */
            k->cancelled = PG_DEADLINE;
            break;
        }
        if (timed_out) {
            if (k->cancelled)
                break; /* no answer to the cancel either */
            cancel_for(c, k, PG_TIMED_OUT);
        } else if (abandoned) {
            cancel_for(c, k, PG_ABANDONED);
        } else {
            k->next_check = now + DRV_CANCEL_CHECK_MS;
        }
    }
    c->broken = true;
    return -1;
}

/* The error when wait_result failed. */
static int wait_failed(drv_conn *c, const pg_clock *k, errdetail *e)
{
    if (k->cancelled == PG_RUNNING)
        return pg_message(e, CITRUS_EUNAVAILABLE, "connection lost: ", PQerrorMessage(conn(c)));
    if (k->cancelled == PG_DEADLINE)
        return errdetail_set(e, CITRUS_ETIMEOUT,
                             "the server did not answer before the deadline: connection given up, "
                             "outcome unknown");
    if (k->cancelled == PG_ABANDONED)
        return errdetail_set(e, CITRUS_ETIMEOUT,
                             "the client went away and the server did not answer the cancel of "
                             "its statement: outcome unknown");
    return errdetail_set(e, CITRUS_ETIMEOUT,
                         "the statement ran past its timeout of %lld ms and the server did not "
                         "answer its cancel: outcome unknown",
                         (long long)c->stmt_timeout_ms);
}

/* Whether r is the server's answer to our cancel for the time limit or
 * the caller's going away. */
static bool cancelled_by_us(const pg_clock *k, const PGresult *r)
{
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    return k->cancelled != PG_RUNNING && state && strcmp(state, "57014") == 0;
}

/* The error of a statement cancelled_by_us. */
static int cancel_error(drv_conn *c, const pg_clock *k, errdetail *e)
{
    int rc = CITRUS_EQUERYTIMEOUT;
    if (k->cancelled == PG_ABANDONED)
        rc = errdetail_set(e, CITRUS_ECLOSED, "the client went away: the statement was cancelled");
    else
        errdetail_set(e, rc, "the statement ran past its timeout of %lld ms and was cancelled",
                      (long long)c->stmt_timeout_ms);
    errdetail_sqlstate(e, "57014");
    return rc;
}

/* The limits of a statement (or script) starting now. */
static pg_clock clock_start(drv_conn *c)
{
    if (!c->stmt_timeout_ms && !c->cancel_fn && !c->deadline_ms)
        return (pg_clock){0};
    int64_t now = clock_mono_ms(c->clock);
    return (pg_clock){.deadline = c->stmt_timeout_ms ? now + c->stmt_timeout_ms : 0,
                      .next_check = c->cancel_fn ? now + DRV_CANCEL_CHECK_MS : 0,
                      .hard = c->deadline_ms};
}

/* The last result of a command sent with PQsend* (the others dropped),
 * waiting as wait_result does; NULL when that failed. */
static PGresult *await_result(drv_conn *c, pg_clock *k)
{
    PGresult *last = NULL, *r;
    for (;;) {
        if (wait_result(c, k) < 0) {
            PQclear(last);
            return NULL;
        }
        if ((r = PQgetResult(conn(c))) == NULL)
            return last;
        PQclear(last);
        last = r;
    }
}

/* DEALLOCATE, best effort (only ever outside a transaction, where a
 * failure aborts nothing): a statement left behind costs only memory. */
static void deallocate(drv_conn *c, const char *name, pg_clock *k)
{
    char sql[STMT_NAME + 16];
    snprintf(sql, sizeof(sql), "DEALLOCATE %s", name);
    if (PQsendQuery(conn(c), sql))
        PQclear(await_result(c, k));
}

/* The named statement to run sql with pp's types under, preparing it
 * first when it is new (the one extra round trip per connection and
 * statement); *name NULL to run it unnamed: no cache, not worth caching,
 * or a full cache inside a transaction (evicting means a DEALLOCATE, kept
 * outside transactions). 0, or the Parse error, which is the statement's
 * own (the same the unnamed run would give). */
static int stmt_for(drv_conn *c, const char *sql, const pg_params *pp, bool idle, pg_clock *k,
                    const char **name, bool *fresh_out, errdetail *e)
{
    *name = NULL;
    *fresh_out = false;
    stmt_cache *s = c->stmts;
    if (!s || !is_cacheable(sql))
        return 0;
    const stmt_ref *known = stmt_cache_find(s, sql, pp->types, pp->n);
    if (known) {
        *name = known->name;
        return 0;
    }
    if (!idle && stmt_cache_full(s))
        return 0;
    const stmt_ref *fresh;
    stmt_ref evicted;
    if (stmt_cache_add(s, sql, pp->types, pp->n, NULL, &fresh, &evicted) != 0)
        return 0; /* out of memory: unnamed still works */
    PGconn *pg = conn(c);
    if (evicted.name[0])
        deallocate(c, evicted.name, k);
    PGresult *r = NULL;
    if (!c->broken && PQsendPrepare(pg, fresh->name, sql, (int)pp->n, pp->types))
        r = await_result(c, k);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        char gone[STMT_NAME];
        memcpy(gone, fresh->name, STMT_NAME);
        stmt_cache_drop(s, gone);
        int rc = !r                      ? wait_failed(c, k, e)
                 : cancelled_by_us(k, r) ? cancel_error(c, k, e)
                                         : fail_result(c, r, e);
        PQclear(r);
        if (PQstatus(pg) != CONNECTION_OK)
            c->broken = true;
        return rc;
    }
    PQclear(r);
    *name = fresh->name;
    *fresh_out = true;
    return 0;
}

/* DEALLOCATEs the statement found stale inside a transaction once the
 * session is idle again (best effort, as deallocate). */
static void flush_stale(drv_conn *c, pg_clock *k)
{
    if (!c->stale_name[0] || c->broken || PQtransactionStatus(conn(c)) != PQTRANS_IDLE)
        return;
    char gone[STMT_NAME];
    memcpy(gone, c->stale_name, STMT_NAME);
    c->stale_name[0] = '\0';
    deallocate(c, gone, k);
}

/* Reads the answer to what was just sent (see pg_exec), waiting as k
 * says; out NULL for a script: every statement's rows are dropped. *stale
 * says whether it failed because the named statement it ran is gone or out
 * of date. */
static int collect(drv_conn *c, size_t max_rows, bool may_cancel, pg_clock *k, result_set *out,
                   bool *truncated, int64_t *changes, errdetail *e, stale_t *stale)
{
    PGconn *pg = conn(c);
    int rc = 0;
    bool single = out && PQsetSingleRowMode(pg) == 1;
    bool have_columns = false, cancelled = false;
    PGresult *r;
    for (;;) {
        if (wait_result(c, k) < 0) {
            rc = wait_failed(c, k, e);
            break;
        }
        if ((r = PQgetResult(pg)) == NULL)
            break;
        ExecStatusType st = PQresultStatus(r);
        if ((st == PGRES_SINGLE_TUPLE || st == PGRES_TUPLES_OK) && out && !have_columns &&
            rc == 0) {
            have_columns = true;
            if (set_columns(r, out) != 0)
                rc = errdetail_set(e, CITRUS_ENOMEM, "out of memory");
        }
        switch (st) {
        case PGRES_SINGLE_TUPLE:
            if (rc || *truncated)
                break; /* dropping the rest */
            if (max_rows && out->nrows >= max_rows) {
                *truncated = true;
                if (may_cancel) {
                    cancel_query(pg);
                    cancelled = true;
                }
                break;
            }
            if (append_rows(r, 0, out, truncated) != 0)
                rc = errdetail_set(e, CITRUS_ENOMEM, "out of memory");
            break;
        case PGRES_TUPLES_OK:
            if (rc == 0 && out && !single && append_rows(r, max_rows, out, truncated) != 0)
                rc = errdetail_set(e, CITRUS_ENOMEM, "out of memory");
            /* fall through */
        case PGRES_COMMAND_OK:
            if (rc == 0)
                *changes = tag_changes(r);
            break;
        case PGRES_EMPTY_QUERY:
            if (rc == 0 && out) /* an empty script is fine */
                rc = errdetail_set(e, CITRUS_EINVAL, "empty statement");
            break;
        case PGRES_COPY_IN:
            /* refused: the server answers with an error result next */
            if (rc == 0)
                rc = errdetail_set(e, CITRUS_EINVAL, "COPY FROM STDIN is not supported");
            if (PQputCopyEnd(pg, "COPY FROM STDIN is not supported") < 0)
                c->broken = true;
            break;
        case PGRES_COPY_OUT: {
            char *buf = NULL;
            int got;
            while ((got = PQgetCopyData(pg, &buf, 0)) > 0)
                PQfreemem(buf);
            if (got == -2)
                c->broken = true;
            if (rc == 0)
                rc = errdetail_set(e, CITRUS_EINVAL, "COPY TO STDOUT is not supported");
            break;
        }
        case PGRES_FATAL_ERROR: {
            const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            if (cancelled && state && strcmp(state, "57014") == 0)
                break; /* our own cancel of a truncated query */
            if (rc == 0 && cancelled_by_us(k, r)) {
                rc = cancel_error(c, k, e);
                break;
            }
            if (rc == 0) {
                *stale = stale_kind(r);
                rc = fail_result(c, r, e);
            } else if (PQstatus(pg) != CONNECTION_OK)
                c->broken = true;
            break;
        }
        default: /* PGRES_BAD_RESPONSE, PGRES_COPY_BOTH, ...: cannot go on */
            c->broken = true;
            break;
        }
        PQclear(r);
        if (c->broken)
            break;
    }
    if (c->broken || PQstatus(pg) != CONNECTION_OK) {
        c->broken = true;
        if (rc != CITRUS_EUNAVAILABLE && rc != CITRUS_ETIMEOUT)
            rc = pg_message(e, CITRUS_EUNAVAILABLE, "connection lost: ", PQerrorMessage(pg));
    }
    return rc;
}

/* Whether the connection is still there to send on (else broken, e set). */
static bool usable(drv_conn *c, errdetail *e)
{
    PGconn *pg = conn(c);
    if (PQstatus(pg) == CONNECTION_OK)
        return true;
    c->broken = true;
    pg_message(e, CITRUS_EUNAVAILABLE, "connection lost: ", PQerrorMessage(pg));
    return false;
}

/* The error of a PQsend* that failed. */
static int send_failed(drv_conn *c, errdetail *e)
{
    PGconn *pg = conn(c);
    if (PQstatus(pg) != CONNECTION_OK)
        c->broken = true;
    return pg_message(e, c->broken ? CITRUS_EUNAVAILABLE : CITRUS_EINVAL, "", PQerrorMessage(pg));
}

static int pg_exec(drv_conn *c, const char *sql, const value *params, size_t nparams,
                   size_t max_rows, result_set *out, bool *truncated, int64_t *changes,
                   errdetail *e)
{
    PGconn *pg = conn(c);
    if (!usable(c, e))
        return e->code;
    pg_params pp;
    int rc = params_make(&pp, params, nparams, e);
    if (rc) {
        params_free(&pp);
        return rc;
    }
    bool idle = PQtransactionStatus(pg) == PQTRANS_IDLE;
    bool may_cancel = idle && is_plain_query(sql);
    pg_clock k = clock_start(c);
    for (int attempt = 0;; attempt++) {
        const char *name = NULL;
        bool fresh = false;
        rc = stmt_for(c, sql, &pp, idle, &k, &name, &fresh, e);
        if (rc)
            break;
        int sent = name ? PQsendQueryPrepared(pg, name, (int)nparams, pp.vals, NULL, NULL, 0)
                        : PQsendQueryParams(pg, sql, (int)nparams, pp.types, pp.vals, NULL, NULL,
                                            0 /* text */);
        if (!sent) {
            rc = send_failed(c, e);
            break;
        }
        stale_t stale = STALE_NO;
        rc = collect(c, max_rows, may_cancel, &k, out, truncated, changes, e, &stale);
        if (rc == 0 && name && !fresh)
            c->gone_seen = false;
        if (rc == 0 || stale == STALE_NO || !name || c->broken)
            break;
        /* The server no longer has the statement (a DEALLOCATE ALL or
         * DISCARD ALL ran on this session) or its plan changed result type
         * (a table it reads was altered): forget it, and outside a
         * transaction (where nothing was aborted) run it once more. Gone
         * again right after being prepared anew means the session cannot
         * keep named statements at all (a transaction-mode pooler between
         * us and the server, resetting or switching server connections):
         * the connection stops caching and runs everything unnamed. */
        /* Inside a transaction nothing can run again: the caller may roll
         * back and retry (the router does), and the signs carry over to
         * that next call: gone again before any kept statement ran is the
         * pooler, and a stale plan is deallocated once idle. */
        if (stale == STALE_GONE && (attempt > 0 || (!idle && c->gone_seen))) {
            stmt_cache_free(c->stmts);
            c->stmts = NULL;
        } else if (stale == STALE_GONE) {
            stmt_cache_clear(c->stmts);
            c->gone_seen = true;
        } else {
            char gone[STMT_NAME];
            snprintf(gone, sizeof(gone), "%s", name);
            stmt_cache_drop(c->stmts, gone);
            if (idle)
                deallocate(c, gone, &k);
            else
                memcpy(c->stale_name, gone, STMT_NAME);
        }
        if (!idle || (attempt > 0 && c->stmts)) /* once, or once more unnamed */
            break;
        rs_free(out);
        rs_init(out);
        *truncated = false;
        *changes = 0;
    }
    params_free(&pp);
    flush_stale(c, &k);
    return rc;
}

static int pg_script(drv_conn *c, const char *sql, errdetail *e)
{
    if (!usable(c, e))
        return e->code;
    pg_clock k = clock_start(c);
    if (!PQsendQuery(conn(c), sql))
        return send_failed(c, e);
    bool truncated = false;
    int64_t changes = 0;
    stale_t stale = STALE_NO;
    return collect(c, 0, false, &k, NULL, &truncated, &changes, e, &stale);
}

/* ---- health -------------------------------------------------------------------- */

static bool pg_alive(drv_conn *c)
{
    PGconn *pg = conn(c);
    if (PQstatus(pg) != CONNECTION_OK)
        return false;
    /* Read what the server sent meanwhile (its "terminating connection"
     * notice, then EOF) without waiting: that is what makes PQstatus see a
     * server that went away while we were idle. */
    struct pollfd p = {.fd = PQsocket(pg), .events = POLLIN};
    if (p.fd < 0)
        return false;
    if (poll(&p, 1, 0) > 0 && !PQisBusy(pg)) {
        PQconsumeInput(pg);
        PGnotify *n;
        while ((n = PQnotifies(pg)) != NULL)
            PQfreemem(n);
    }
    return PQstatus(pg) == CONNECTION_OK;
}

/* "SELECT 1", sent asynchronously and waited for until the open timeout. */
static int pg_ping(drv_conn *c, errdetail *e)
{
    PGconn *pg = conn(c);
    if (PQstatus(pg) != CONNECTION_OK || !PQsendQuery(pg, "SELECT 1")) {
        c->broken = true;
        return pg_message(e, CITRUS_EUNAVAILABLE, "", PQerrorMessage(pg));
    }
    int64_t start = clock_mono_ms(c->clock), until = start + c->timeout_ms;
    if (c->deadline_ms && c->deadline_ms < until)
        until = c->deadline_ms;
    int w = wait_busy(c, until);
    if (w != 0) {
        c->broken = true; /* gone, or the query is still in flight */
        return w < 0 ? pg_message(e, CITRUS_EUNAVAILABLE, "", PQerrorMessage(pg))
                     : errdetail_set(e, CITRUS_EUNAVAILABLE, "SELECT 1: no answer in %lld ms",
                                     (long long)(until > start ? until - start : 0));
    }
    int rc = 0;
    PGresult *r;
    while ((r = PQgetResult(pg)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        /* An error the server sent (say, in a failed transaction) still
         * shows it is there; only a gone connection fails the ping. */
        bool answered = st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK ||
                        (st == PGRES_FATAL_ERROR && state && !state_is_gone(state) &&
                         PQstatus(pg) == CONNECTION_OK);
        if (rc == 0 && !answered) {
            fail_result(c, r, e);
            c->broken = true;
            rc = CITRUS_EUNAVAILABLE;
        }
        PQclear(r);
    }
    if (rc == 0 && PQstatus(pg) != CONNECTION_OK) {
        c->broken = true;
        rc = pg_message(e, CITRUS_EUNAVAILABLE, "", PQerrorMessage(pg));
    }
    return rc;
}

static int pg_replica_lag_ms(drv_conn *c, bool *replica, int64_t *lag_ms, errdetail *e)
{
    result_set rs;
    rs_init(&rs);
    bool truncated = false;
    int64_t changes = 0;
    int rc = pg_exec(c, LAG_SQL, NULL, 0, 0, &rs, &truncated, &changes, e);
    if (rc == 0) {
        if (rs.nrows == 1 && rs.ncols == 2 && val_ok(rs_cell(&rs, 0, 0), VAL_BOOL) &&
            val_ok(rs_cell(&rs, 0, 1), VAL_INT)) {
            *replica = rs_cell(&rs, 0, 0)->u.b;
            *lag_ms = rs_cell(&rs, 0, 1)->u.i;
        } else {
            rc = errdetail_set(e, CITRUS_EINVAL, "unexpected answer to the replication query");
        }
    }
    rs_free(&rs);
    return rc;
}

/* PQescapeIdentifier (which knows the connection's encoding), copied to
 * malloc'd memory. */
static char *pg_quote_ident(drv_conn *c, const char *name)
{
    char *q = PQescapeIdentifier(conn(c), name, strlen(name));
    char *copy = q ? strdup(q) : NULL;
    PQfreemem(q);
    return copy;
}

/* PQescapeLiteral (the connection's encoding and standard_conforming_strings),
 * copied to malloc'd memory. */
static char *pg_quote_literal(drv_conn *c, const char *s)
{
    char *q = PQescapeLiteral(conn(c), s, strlen(s));
    char *copy = q ? strdup(q) : NULL;
    PQfreemem(q);
    return copy;
}

const drv_ops drv_pg_ops = {
    .kind = DSN_POSTGRES,
    .begin_sql = "BEGIN",
    .release = NULL, /* named statements live on the server */
    .open = pg_open,
    .close = pg_close,
    .exec = pg_exec,
    .script = pg_script,
    .tx_state = pg_tx_state,
    .alive = pg_alive,
    .ping = pg_ping,
    .replica_lag_ms = pg_replica_lag_ms,
    .quote_ident = pg_quote_ident,
    .quote_literal = pg_quote_literal,
};
