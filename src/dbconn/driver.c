/* dbconn/driver.c — the shard driver interface (see driver.h): argument
 * checks, dispatch through the backend's drv_ops table (driver_ops.h), and
 * what every backend shares (the transaction verbs, scripts in a
 * transaction, a column as text, probes).
 *
 * The DSN is checked with dsn_parse and the process's DSN rules
 * (drv_set_dsn_policy) first, so a malformed or disallowed one is
 * CITRUS_EINVAL and never reaches a backend; its kind picks the table. Every
 * drv_exec starts from a clean slate (out emptied, *truncated false,
 * *changes 0) and out is emptied again on error, so callers never see half
 * a result.
 *
 * Transactions are normalized here so the router sees one behaviour:
 * BEGIN inside a transaction and COMMIT outside one are errors on both
 * backends (PostgreSQL would only warn, SQLite would fail), ROLLBACK
 * outside one is a no-op (PostgreSQL would warn, SQLite would fail), and
 * COMMIT of a failed PostgreSQL transaction — which the server silently
 * turns into a ROLLBACK — is reported as the error it is. */
#include "dbconn/driver.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "core/dsn.h"
#include "core/strbuf.h"
#include "dbconn/driver_ops.h"
#include "dbconn/stmt_cache.h"

#define DEFAULT_TIMEOUT_MS 5000

static const drv_ops *const backends[] = {&drv_sqlite_ops, &drv_pg_ops};

static const drv_ops *backend_for(dsn_kind kind)
{
    for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
        if (backends[i]->kind == kind)
            return backends[i];
    return NULL;
}

/* The rules drv_set_dsn_policy copied; empty strings are "none". */
static struct {
    char tls_dir[1024], socket_dirs[1024], allowed_hosts[4096];
} rules;

int drv_set_dsn_policy(const dsn_policy *p, errdetail *e)
{
    const dsn_policy none = {0};
    if (!p)
        p = &none;
    int rc = dsn_policy_hosts_check(p->allowed_hosts, e);
    if (rc < 0)
        return rc;
    if (snprintf(rules.tls_dir, sizeof(rules.tls_dir), "%s", p->tls_dir ? p->tls_dir : "") >=
            (int)sizeof(rules.tls_dir) ||
        snprintf(rules.socket_dirs, sizeof(rules.socket_dirs), "%s",
                 p->socket_dirs ? p->socket_dirs : "") >= (int)sizeof(rules.socket_dirs) ||
        snprintf(rules.allowed_hosts, sizeof(rules.allowed_hosts), "%s",
                 p->allowed_hosts ? p->allowed_hosts : "") >= (int)sizeof(rules.allowed_hosts))
        return errdetail_set(e, CITRUS_EINVAL, "the DSN rules are too long");
    return 0;
}

int drv_dsn_check(const char *dsn, errdetail *e)
{
    const dsn_policy p = {.tls_dir = rules.tls_dir,
                          .socket_dirs = rules.socket_dirs,
                          .allowed_hosts = rules.allowed_hosts};
    return dsn_check(dsn, &p, e);
}

int drv_open(const char *dsn, const drv_options *o, drv_conn **out, errdetail *e)
{
    errdetail scratch;
    if (!e)
        e = &scratch;
    errdetail_clear(e);
    *out = NULL;
    if (!dsn)
        return errdetail_set(e, CITRUS_EINVAL, "no DSN");
    dsn_info info;
    if (dsn_parse(dsn, &info, e) != 0 || drv_dsn_check(dsn, e) != 0)
        return e->code;
    const drv_ops *ops = backend_for(info.kind);
    if (!ops)
        return errdetail_set(e, CITRUS_EINVAL, "no driver for this kind of DSN");
    drv_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    c->ops = ops;
    c->timeout_ms = o && o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
    c->clock = o && o->clock ? o->clock : clock_real();
    c->schema_sandbox = o && o->sandbox == DRV_SANDBOX_SCHEMA;
    int rc = ops->open(c, dsn, &info, o && o->create, e);
    if (rc) {
        drv_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

void drv_set_statement_cache(drv_conn *c, size_t n)
{
    if (!c)
        return;
    stmt_cache_free(c->stmts);
    /* out of memory: no cache */
    c->stmts = n ? stmt_cache_new(n, c->ops->release) : NULL;
}

void drv_set_statement_timeout(drv_conn *c, int64_t ms)
{
    if (c)
        c->stmt_timeout_ms = ms > 0 ? ms : 0;
}

void drv_set_deadline(drv_conn *c, int64_t at_ms)
{
    if (c)
        c->deadline_ms = at_ms > 0 ? at_ms : 0;
}

void drv_set_cancel_check(drv_conn *c, drv_cancel_fn fn, void *ctx)
{
    if (!c)
        return;
    c->cancel_fn = fn;
    c->cancel_ctx = fn ? ctx : NULL;
}

void drv_close(drv_conn *c)
{
    if (!c)
        return;
    stmt_cache_free(c->stmts); /* its statements first: they hold the database open */
    c->stmts = NULL;
    c->ops->close(c);
    free(c);
}

int drv_exec(drv_conn *c, const char *sql, const value *params, size_t nparams, size_t max_rows,
             result_set *out, bool *truncated, int64_t *changes, errdetail *e)
{
    errdetail scratch_e;
    result_set scratch_rs;
    bool scratch_trunc;
    int64_t scratch_changes;
    if (!e)
        e = &scratch_e;
    if (!truncated)
        truncated = &scratch_trunc;
    if (!changes)
        changes = &scratch_changes;
    bool discard = !out;
    if (discard) {
        out = &scratch_rs;
        rs_init(out);
    } else if (out->ncols || out->nrows) {
        rs_free(out);
    }
    errdetail_clear(e);
    *truncated = false;
    *changes = 0;
    if (!c || !sql)
        return errdetail_set(e, CITRUS_EINVAL, "no connection or no statement");
    if (nparams && !params)
        return errdetail_set(e, CITRUS_EINVAL, "%zu parameters announced, none given", nparams);
    if (c->broken)
        return errdetail_set(e, CITRUS_EUNAVAILABLE, "the connection is broken");
    int rc = c->ops->exec(c, sql, params, nparams, max_rows, out, truncated, changes, e);
    if (rc || discard) {
        rs_free(out); /* also leaves it rs_init'ed */
        if (rc) {
            *truncated = false;
            *changes = 0;
        }
    }
    return rc;
}

static drv_tx_state tx_state(drv_conn *c)
{
    if (!c || c->broken)
        return DRV_TX_IDLE;
    return c->ops->tx_state(c);
}

bool drv_in_transaction(drv_conn *c)
{
    return tx_state(c) != DRV_TX_IDLE;
}

static int run(drv_conn *c, const char *sql, errdetail *e)
{
    return drv_exec(c, sql, NULL, 0, 0, NULL, NULL, NULL, e);
}

int drv_begin(drv_conn *c, errdetail *e)
{
    if (c && !c->broken && tx_state(c) != DRV_TX_IDLE)
        return errdetail_set(e, CITRUS_EINVAL, "a transaction is already open");
    return run(c, c ? c->ops->begin_sql : "BEGIN", e);
}

int drv_begin_scoped(drv_conn *c, const drv_setting *set, size_t n, bool always, errdetail *e)
{
    if (!c || c->broken || !c->ops->quote_literal || n == 0) {
        if (always || !c || c->broken)
            return drv_begin(c, e);
        errdetail_clear(e);
        return 0;
    }
    if (tx_state(c) != DRV_TX_IDLE)
        return errdetail_set(e, CITRUS_EINVAL, "a transaction is already open");
    strbuf b = STRBUF_INIT;
    strbuf_str(&b, c->ops->begin_sql);
    strbuf_str(&b, "; SELECT ");
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++) {
        char *name = c->ops->quote_literal(c, set[i].name);
        char *val = c->ops->quote_literal(c, set[i].value ? set[i].value : "");
        ok = name && val;
        if (ok) {
            strbuf_str(&b, i ? ", set_config(" : "set_config(");
            strbuf_str(&b, name);
            strbuf_str(&b, ", ");
            strbuf_str(&b, val);
            strbuf_str(&b, ", true)");
        }
        free(name);
        free(val);
    }
    char *sql = strbuf_take(&b, NULL);
    if (!ok || !sql) {
        free(sql);
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    }
    int rc = drv_run_script(c, sql, e);
    free(sql);
    if (rc && drv_in_transaction(c))
        drv_rollback(c, NULL); /* e keeps what failed */
    return rc;
}

int drv_commit(drv_conn *c, errdetail *e)
{
    if (!c || c->broken)
        return run(c, "COMMIT", e); /* the error drv_exec gives */
    switch (tx_state(c)) {
    case DRV_TX_IDLE:
        return errdetail_set(e, CITRUS_EINVAL, "no transaction is open");
    case DRV_TX_FAILED: {
        int rc = run(c, "ROLLBACK", e);
        if (rc)
            return rc;
        errdetail_set(e, CITRUS_EINVAL, "the transaction had failed and was rolled back");
        errdetail_sqlstate(e, "25P02");
        return CITRUS_EINVAL;
    }
    case DRV_TX_ACTIVE:
        break;
    }
    return run(c, "COMMIT", e);
}

int drv_rollback(drv_conn *c, errdetail *e)
{
    if (c && !c->broken && tx_state(c) == DRV_TX_IDLE) {
        errdetail_clear(e);
        return 0;
    }
    return run(c, "ROLLBACK", e);
}

bool drv_alive(drv_conn *c)
{
    return c && !c->broken && c->ops->alive(c);
}

int drv_ping(drv_conn *c, errdetail *e)
{
    errdetail scratch;
    if (!e)
        e = &scratch;
    errdetail_clear(e);
    if (!c || c->broken)
        return errdetail_set(e, CITRUS_EUNAVAILABLE, "the connection is broken");
    return c->ops->ping(c, e);
}

int drv_replica_lag_ms(drv_conn *c, bool *replica, int64_t *lag_ms, errdetail *e)
{
    errdetail scratch;
    if (!e)
        e = &scratch;
    errdetail_clear(e);
    *replica = false;
    *lag_ms = 0;
    if (!c || c->broken)
        return errdetail_set(e, CITRUS_EUNAVAILABLE, "the connection is broken");
    return c->ops->replica_lag_ms(c, replica, lag_ms, e);
}

/* ---- the control plane ---- */

int drv_run_script(drv_conn *c, const char *sql, errdetail *e)
{
    errdetail scratch;
    if (!e)
        e = &scratch;
    errdetail_clear(e);
    if (!c || !sql)
        return errdetail_set(e, CITRUS_EINVAL, "no connection or no script");
    if (c->broken)
        return errdetail_set(e, CITRUS_EUNAVAILABLE, "the connection is broken");
    return c->ops->script(c, sql, e);
}

int drv_run_script_tx(drv_conn *c, const char *sql, errdetail *e)
{
    int rc = drv_begin(c, e);
    if (rc)
        return rc;
    rc = drv_run_script(c, sql, e);
    if (rc == 0 && !drv_in_transaction(c))
        rc = errdetail_set(
            e, CITRUS_EINVAL,
            "the script ended the transaction itself (BEGIN/COMMIT/ROLLBACK are not allowed)");
    else if (rc == 0)
        rc = drv_commit(c, e);
    if (rc && drv_in_transaction(c))
        drv_rollback(c, NULL); /* e keeps what failed */
    return rc;
}

/* A cell as text (see drv_query_column); NULL when out of memory. */
static char *cell_text(const value *v)
{
    char num[32];
    switch (v->type) {
    case VAL_TEXT:
    case VAL_BLOB:
    case VAL_NUMERIC:
        return strndup(v->u.s.p ? v->u.s.p : "", v->u.s.len);
    case VAL_INT:
        snprintf(num, sizeof(num), "%" PRId64, v->u.i);
        return strdup(num);
    case VAL_REAL:
        snprintf(num, sizeof(num), "%.17g", v->u.d);
        return strdup(num);
    case VAL_BOOL:
        return strdup(v->u.b ? "t" : "f");
    default:
        return strdup("");
    }
}

int drv_query_column(drv_conn *c, const char *sql, char ***rows, size_t *nrows, errdetail *e)
{
    *rows = NULL;
    *nrows = 0;
    result_set rs;
    rs_init(&rs);
    int rc = drv_exec(c, sql, NULL, 0, 0, &rs, NULL, NULL, e);
    size_t n = rc == 0 && rs.ncols ? rs.nrows : 0;
    char **v = n ? calloc(n, sizeof(*v)) : NULL;
    for (size_t i = 0; v && i < n; i++)
        if (!(v[i] = cell_text(rs_cell(&rs, i, 0))))
            break;
    rs_free(&rs);
    if (n && (!v || !v[n - 1])) {
        drv_free_column(v, n);
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    }
    *rows = v;
    *nrows = n;
    return rc;
}

void drv_free_column(char **rows, size_t nrows)
{
    for (size_t i = 0; rows && i < nrows; i++)
        free(rows[i]);
    free(rows);
}

char *drv_quote_ident(drv_conn *c, const char *name)
{
    return c && name ? c->ops->quote_ident(c, name) : NULL;
}

int drv_probe(const char *dsn, const drv_options *o, int64_t *latency_ms, errdetail *e)
{
    errdetail scratch;
    if (!e)
        e = &scratch;
    const sysclock *clock = o ? o->clock : NULL;
    int64_t t0 = clock_mono_ms(clock);
    drv_conn *c = NULL;
    int rc = drv_open(dsn, o, &c, e);
    if (rc == 0)
        rc = drv_ping(c, e);
    if (latency_ms)
        *latency_ms = clock_mono_ms(clock) - t0;
    drv_close(c);
    if (rc && rc != CITRUS_EINVAL)
        rc = e->code = CITRUS_EUNAVAILABLE;
    return rc;
}
