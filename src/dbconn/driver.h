/* dbconn/driver.h — the data plane's connection to one shard database:
 * SQLite or PostgreSQL (libpq) behind one interface, for the router.
 *
 * Statements carry parameters as $1, $2, ... on every backend and they are
 * always bound, never spliced into the text (SQLite binds "$N" by name;
 * PostgreSQL natively). Values travel as core/value.h values. Errors carry
 * the database's message and, for PostgreSQL, its SQLSTATE.
 *
 * A drv_conn is used by one thread at a time. */
#ifndef CITRUS_DBCONN_DRIVER_H
#define CITRUS_DBCONN_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/value.h"

typedef struct drv_conn drv_conn;

typedef struct drv_error {
    char message[512];
    char sqlstate[6]; /* "" when the backend has none (SQLite) */
} drv_error;

/* Opens a connection (dsn: sqlite:///path or a libpq DSN); timeout_ms
 * bounds the connect (0 = 5000), and later drv_ping; it is also SQLite's
 * busy timeout (how long a statement waits for another writer's lock). An
 * SQLite file must exist already (provisioning creates it); it is put in
 * WAL mode. 0, CITRUS_EINVAL (bad DSN), CITRUS_EUNAVAILABLE (cannot
 * connect, missing or not a database file), with e filled. */
int drv_open(const char *dsn, int64_t timeout_ms, drv_conn **out, drv_error *e);
void drv_close(drv_conn *c);

/* Keep up to n prepared statements on this connection (0: none, the
 * default; every statement is then prepared for its run and dropped).
 *
 * SQLite: every statement is kept once prepared, keyed by its text, and a
 * later run only resets, binds and steps it; the least recently used is
 * finalized to make room. SQLite prepares a kept statement again by itself
 * when the schema changed under it (an ALTER TABLE under a SELECT * gives
 * the new columns).
 *
 * PostgreSQL: named prepared statements on the server. Queries and DML (SELECT, INSERT, UPDATE,
 * DELETE, WITH, VALUES, TABLE, MERGE) are prepared on their first run, with the parameter types of
 * that run, and later runs with the same text and types only bind and execute; the least recently
 * used statement is deallocated to make room. A statement the session lost (DEALLOCATE ALL, DISCARD
 * ALL) or whose result type changed (ALTER TABLE under a SELECT *) is prepared again and, outside a
 * transaction, run again transparently; lost again right after that (a transaction-mode pooler in
 * between that resets or switches server sessions), the connection stops caching and runs
 * everything unnamed from then on.
 *
 * Replaces (and forgets) any earlier cache. */
void drv_set_statement_cache(drv_conn *c, size_t n);

/* How long each later drv_exec may run, ms (0: no limit, the default).
 * Past it the statement is cancelled (PostgreSQL: a cancel request, then
 * the server's answer is awaited up to the open timeout; SQLite: the
 * statement is interrupted) and drv_exec returns CITRUS_EQUERYTIMEOUT: the
 * statement was not applied (inside a transaction, the transaction is
 * aborted). When PostgreSQL does not answer the cancel in time either, the
 * connection is given up (broken) and the outcome is unknown:
 * CITRUS_ETIMEOUT. A lock wait on SQLite is bounded by the busy timeout
 * as before. */
void drv_set_statement_timeout(drv_conn *c, int64_t ms);

/* Runs exactly one statement (a trailing ";" is fine; a second statement
 * is an error) with nparams bound parameters; rows (if any) go into out
 * (which must be rs_init'ed; columns set from the statement, none for a
 * statement that returns no rows; out may be NULL to discard them). At
 * most max_rows rows are kept (0 = no limit); *truncated says whether more
 * were there. *changes: rows changed by an INSERT/UPDATE/DELETE (0 for
 * anything else). truncated, changes and e may be NULL. 0, or
 * CITRUS_EINVAL for an SQL error (bad statement, wrong parameter count,
 * constraint, ...: the caller's fault, 400), CITRUS_EUNAVAILABLE when the
 * database cannot serve it now: the connection broke (it is then unusable:
 * drv_alive false), or SQLite stayed locked by another writer beyond the
 * busy timeout (the connection itself is fine), CITRUS_ENOMEM; with e
 * filled and out emptied. After an error inside a transaction PostgreSQL
 * refuses everything until drv_rollback; SQLite only undoes the statement. */
int drv_exec(drv_conn *c, const char *sql, const value *params, size_t nparams, size_t max_rows,
             result_set *out, bool *truncated, int64_t *changes, drv_error *e);

/* BEGIN (SQLite: BEGIN IMMEDIATE, taking the write lock up front, waiting
 * up to the busy timeout) / COMMIT / ROLLBACK. The same on both backends:
 * drv_begin inside a transaction and drv_commit outside one are
 * CITRUS_EINVAL; drv_commit of a PostgreSQL transaction that had failed
 * rolls it back and is CITRUS_EINVAL; drv_rollback outside a transaction
 * does nothing. */
int drv_begin(drv_conn *c, drv_error *e);
int drv_commit(drv_conn *c, drv_error *e);
int drv_rollback(drv_conn *c, drv_error *e);
/* Whether a transaction is open (or failed and not yet rolled back). */
bool drv_in_transaction(drv_conn *c);

/* Whether the connection still works (cheap local check, no round trip:
 * PostgreSQL: PQstatus after reading whatever the server already sent,
 * such as its shutdown notice; false after CITRUS_EUNAVAILABLE). drv_ping
 * runs "SELECT 1" (SQLite: reads the schema, so a file that is no longer a
 * database fails) bounded by drv_open's timeout; 0 or CITRUS_EUNAVAILABLE. */
bool drv_alive(drv_conn *c);
int drv_ping(drv_conn *c, drv_error *e);

/* PostgreSQL replicas: the replication lag in ms (now() -
 * pg_last_xact_replay_timestamp(), 0 when it has replayed all it received,
 * 10^12 when it is behind and has replayed nothing since it started) and
 * whether it is in recovery (a replica). SQLite: 0 and false. */
int drv_replica_lag_ms(drv_conn *c, bool *in_recovery, int64_t *lag_ms, drv_error *e);

/* ---- for driver.c and the backends (driver_sqlite.c, driver_pg.c) only ---- */
#ifdef CITRUS_DRIVER_INTERNAL

typedef enum { DRV_TX_IDLE, DRV_TX_ACTIVE, DRV_TX_FAILED } drv_tx_state;

struct drv_conn {
    bool is_pg;
    void *handle;             /* sqlite3 * or PGconn * */
    bool broken;              /* a CITRUS_EUNAVAILABLE that ends the connection */
    int64_t timeout_ms;       /* > 0 */
    struct stmt_cache *stmts; /* prepared statements (named on PostgreSQL), or NULL */
    int64_t stmt_timeout_ms;  /* drv_set_statement_timeout; 0 = none */
    int64_t deadline_ms;      /* SQLite: CLOCK_MONOTONIC end of the running statement; 0 = none */
};

/* CLOCK_MONOTONIC in ms (statement deadlines). */
int64_t drv_mono_ms(void);

/* Fills e (when not NULL) and returns rc. */
int drv_fail(drv_error *e, int rc, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The backends: arguments are checked and normalized by driver.c (out,
 * truncated, changes and e are never NULL; out is empty; *truncated is
 * false and *changes 0). */
int drv_lite_open(drv_conn *c, const char *path, drv_error *e);
void drv_lite_close(drv_conn *c);
/* Finalizes an sqlite3_stmt (the release function of its statement cache). */
void drv_lite_finalize(void *stmt);
int drv_lite_exec(drv_conn *c, const char *sql, const value *params, size_t nparams,
                  size_t max_rows, result_set *out, bool *truncated, int64_t *changes,
                  drv_error *e);
drv_tx_state drv_lite_tx_state(drv_conn *c);
int drv_lite_ping(drv_conn *c, drv_error *e);

int drv_pg_open(drv_conn *c, const char *dsn, drv_error *e);
void drv_pg_close(drv_conn *c);
int drv_pg_exec(drv_conn *c, const char *sql, const value *params, size_t nparams, size_t max_rows,
                result_set *out, bool *truncated, int64_t *changes, drv_error *e);
drv_tx_state drv_pg_tx_state(drv_conn *c);
bool drv_pg_alive(drv_conn *c);
int drv_pg_ping(drv_conn *c, drv_error *e);
int drv_pg_replica_lag_ms(drv_conn *c, bool *in_recovery, int64_t *lag_ms, drv_error *e);

#endif /* CITRUS_DRIVER_INTERNAL */

#endif
