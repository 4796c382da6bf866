/* dbconn/driver_ops.h — what a shard database backend gives driver.c: one
 * drv_ops table per backend (driver_sqlite.c, driver_pg.c), as store_ops
 * does for the catalog. driver.c picks the table by the DSN's kind, checks
 * and normalizes the arguments, and calls through it; everything that
 * differs between the databases is an operation or a datum of the table,
 * so the generic code never asks which database it talks to. The backends
 * call nothing in driver.c.
 *
 * For driver.c and the backends only. */
#ifndef CITRUS_DBCONN_DRIVER_OPS_H
#define CITRUS_DBCONN_DRIVER_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dsn.h"
#include "core/errdetail.h"
#include "core/value.h"
#include "dbconn/stmt_cache.h"
#include "sys/clock.h"

typedef struct drv_conn drv_conn;

typedef enum { DRV_TX_IDLE, DRV_TX_ACTIVE, DRV_TX_FAILED } drv_tx_state;

/* Arguments are checked and normalized by driver.c before any operation
 * runs: c is open and not broken (except for close), e is never NULL and
 * cleared, out is empty, *truncated false and *changes 0. An operation
 * that fails fills e (code and message, the SQLSTATE when the database
 * gave one) and returns the code; one that finds the connection gone sets
 * c->broken. */
typedef struct drv_ops {
    dsn_kind kind;           /* the DSNs this backend serves */
    const char *begin_sql;   /* the statement that opens a transaction */
    stmt_release_fn release; /* frees a kept statement's handle; NULL: there are none */
    /* Connects c (timeout_ms and clock already set) to dsn (info: its
     * parse); create: SQLite makes a missing file. c->handle stays NULL
     * or is left for close on failure. */
    int (*open)(drv_conn *c, const char *dsn, const dsn_info *info, bool create, errdetail *e);
    /* Closes the handle (NULL: nothing); the statement cache is freed
     * already. */
    void (*close)(drv_conn *c);
    /* drv_exec: one statement, bound parameters. */
    int (*exec)(drv_conn *c, const char *sql, const value *params, size_t nparams, size_t max_rows,
                result_set *out, bool *truncated, int64_t *changes, errdetail *e);
    /* drv_run_script: statements separated by ";", no parameters, rows
     * dropped; stops at the first error. */
    int (*script)(drv_conn *c, const char *sql, errdetail *e);
    drv_tx_state (*tx_state)(drv_conn *c);
    /* drv_alive's check once broken is known false. */
    bool (*alive)(drv_conn *c);
    /* A round trip bounded by timeout_ms; 0 or CITRUS_EUNAVAILABLE. */
    int (*ping)(drv_conn *c, errdetail *e);
    /* drv_replica_lag_ms: *replica and *lag_ms are false and 0 on entry. */
    int (*replica_lag_ms)(drv_conn *c, bool *replica, int64_t *lag_ms, errdetail *e);
    /* name as a quoted SQL identifier (malloc'd); NULL when out of memory. */
    char *(*quote_ident)(drv_conn *c, const char *name);
    /* s as a quoted SQL literal (malloc'd; NULL when out of memory), for
     * drv_begin_scoped's settings. NULL: the backend has no settings. */
    char *(*quote_literal)(drv_conn *c, const char *s);
} drv_ops;

struct drv_conn {
    const drv_ops *ops;
    void *handle;                 /* the backend's own */
    bool broken;                  /* a CITRUS_EUNAVAILABLE that ends the connection */
    int64_t timeout_ms;           /* > 0 */
    const sysclock *clock;        /* statement deadlines; never NULL */
    stmt_cache *stmts;            /* prepared statements (named on PostgreSQL), or NULL */
    int64_t stmt_timeout_ms;      /* drv_set_statement_timeout; 0 = none */
    int64_t deadline_ms;          /* drv_set_deadline, on clock; 0 = none */
    bool (*cancel_fn)(void *ctx); /* drv_set_cancel_check; NULL = none */
    void *cancel_ctx;
    /* PostgreSQL: a named statement found stale inside a transaction, to
     * DEALLOCATE once the session is idle again ("" for none), and whether
     * a kept statement was found gone since one last ran (gone twice in a
     * row: the session cannot keep statements, see driver.h). */
    char stale_name[STMT_NAME];
    bool gone_seen;
    bool schema_sandbox; /* SQLite: DRV_SANDBOX_SCHEMA (DDL too), else the query sandbox */
    char refused[128];   /* what the SQLite sandbox refused last, for its error */
};

extern const drv_ops drv_sqlite_ops; /* driver_sqlite.c */
extern const drv_ops drv_pg_ops;     /* driver_pg.c */

#endif
