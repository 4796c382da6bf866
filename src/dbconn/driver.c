/* dbconn/driver.c — the shard driver interface (see driver.h): argument
 * checks, dispatch to driver_sqlite.c / driver_pg.c, and what both share
 * (error filling, the transaction verbs).
 *
 * The DSN is checked with dsn_parse first, so a malformed one is
 * CITRUS_EINVAL and never reaches a driver. Every drv_exec starts from a
 * clean slate (out emptied, *truncated false, *changes 0) and out is
 * emptied again on error, so callers never see half a result.
 *
 * Transactions are normalized here so the router sees one behaviour:
 * BEGIN inside a transaction and COMMIT outside one are errors on both
 * backends (PostgreSQL would only warn, SQLite would fail), ROLLBACK
 * outside one is a no-op (PostgreSQL would warn, SQLite would fail), and
 * COMMIT of a failed PostgreSQL transaction — which the server silently
 * turns into a ROLLBACK — is reported as the error it is. */
#define CITRUS_DRIVER_INTERNAL
#include "dbconn/driver.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "citrus/errors.h"
#include "core/dsn.h"
#include "dbconn/stmt_cache.h"

#define DEFAULT_TIMEOUT_MS 5000

int drv_fail(drv_error *e, int rc, const char *sqlstate, const char *fmt, ...)
{
    if (!e)
        return rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    snprintf(e->sqlstate, sizeof(e->sqlstate), "%s", sqlstate ? sqlstate : "");
    return rc;
}

static void clear_error(drv_error *e)
{
    e->message[0] = '\0';
    e->sqlstate[0] = '\0';
}

int drv_open(const char *dsn, int64_t timeout_ms, drv_conn **out, drv_error *e)
{
    drv_error scratch;
    if (!e)
        e = &scratch;
    clear_error(e);
    *out = NULL;
    if (!dsn)
        return drv_fail(e, CITRUS_EINVAL, NULL, "no DSN");
    dsn_info info;
    if (dsn_parse(dsn, &info, e->message, sizeof(e->message)) != 0)
        return CITRUS_EINVAL;
    drv_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return drv_fail(e, CITRUS_ENOMEM, NULL, "out of memory");
    c->is_pg = info.kind == DSN_POSTGRES;
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS;
    int rc = c->is_pg ? drv_pg_open(c, dsn, e) : drv_lite_open(c, info.path, e);
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
    c->stmts = n ? stmt_cache_new(n, c->is_pg ? NULL : drv_lite_finalize) : NULL;
}

int64_t drv_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void drv_set_statement_timeout(drv_conn *c, int64_t ms)
{
    if (c)
        c->stmt_timeout_ms = ms > 0 ? ms : 0;
}

void drv_close(drv_conn *c)
{
    if (!c)
        return;
    if (c->is_pg)
        drv_pg_close(c);
    else
        drv_lite_close(c);
    free(c);
}

int drv_exec(drv_conn *c, const char *sql, const value *params, size_t nparams, size_t max_rows,
             result_set *out, bool *truncated, int64_t *changes, drv_error *e)
{
    drv_error scratch_e;
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
    clear_error(e);
    *truncated = false;
    *changes = 0;
    if (!c || !sql)
        return drv_fail(e, CITRUS_EINVAL, NULL, "no connection or no statement");
    if (nparams && !params)
        return drv_fail(e, CITRUS_EINVAL, NULL, "%zu parameters announced, none given", nparams);
    if (c->broken)
        return drv_fail(e, CITRUS_EUNAVAILABLE, NULL, "the connection is broken");
    int rc = c->is_pg
                 ? drv_pg_exec(c, sql, params, nparams, max_rows, out, truncated, changes, e)
                 : drv_lite_exec(c, sql, params, nparams, max_rows, out, truncated, changes, e);
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
    return c->is_pg ? drv_pg_tx_state(c) : drv_lite_tx_state(c);
}

bool drv_in_transaction(drv_conn *c)
{
    return tx_state(c) != DRV_TX_IDLE;
}

static int run(drv_conn *c, const char *sql, drv_error *e)
{
    return drv_exec(c, sql, NULL, 0, 0, NULL, NULL, NULL, e);
}

int drv_begin(drv_conn *c, drv_error *e)
{
    if (c && !c->broken && tx_state(c) != DRV_TX_IDLE)
        return drv_fail(e, CITRUS_EINVAL, NULL, "a transaction is already open");
    return run(c, c && !c->is_pg ? "BEGIN IMMEDIATE" : "BEGIN", e);
}

int drv_commit(drv_conn *c, drv_error *e)
{
    if (!c || c->broken)
        return run(c, "COMMIT", e); /* the error drv_exec gives */
    switch (tx_state(c)) {
    case DRV_TX_IDLE:
        return drv_fail(e, CITRUS_EINVAL, NULL, "no transaction is open");
    case DRV_TX_FAILED: {
        int rc = run(c, "ROLLBACK", e);
        return rc ? rc
                  : drv_fail(e, CITRUS_EINVAL, "25P02",
                             "the transaction had failed and was rolled back");
    }
    case DRV_TX_ACTIVE:
        break;
    }
    return run(c, "COMMIT", e);
}

int drv_rollback(drv_conn *c, drv_error *e)
{
    if (c && !c->broken && tx_state(c) == DRV_TX_IDLE) {
        if (e)
            clear_error(e);
        return 0;
    }
    return run(c, "ROLLBACK", e);
}

bool drv_alive(drv_conn *c)
{
    if (!c || c->broken)
        return false;
    return c->is_pg ? drv_pg_alive(c) : true;
}

int drv_ping(drv_conn *c, drv_error *e)
{
    drv_error scratch;
    if (!e)
        e = &scratch;
    clear_error(e);
    if (!c || c->broken)
        return drv_fail(e, CITRUS_EUNAVAILABLE, NULL, "the connection is broken");
    return c->is_pg ? drv_pg_ping(c, e) : drv_lite_ping(c, e);
}

int drv_replica_lag_ms(drv_conn *c, bool *in_recovery, int64_t *lag_ms, drv_error *e)
{
    drv_error scratch;
    if (!e)
        e = &scratch;
    clear_error(e);
    *in_recovery = false;
    *lag_ms = 0;
    if (!c || c->broken)
        return drv_fail(e, CITRUS_EUNAVAILABLE, NULL, "the connection is broken");
    return c->is_pg ? drv_pg_replica_lag_ms(c, in_recovery, lag_ms, e) : 0;
}
