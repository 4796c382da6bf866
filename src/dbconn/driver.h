/* dbconn/driver.h — a connection to one shard database: SQLite or
 * PostgreSQL (libpq) behind one interface (each backend fills a drv_ops
 * table, see driver_ops.h), for the router's data plane and for the
 * control plane's provisioning, schema templates and health probes.
 *
 * Statements carry parameters as $1, $2, ... on every backend and they are
 * always bound, never spliced into the text (SQLite binds "$N" by name;
 * PostgreSQL natively). Values travel as core/value.h values. Errors are
 * an errdetail: the code, the database's message and, for PostgreSQL, its
 * SQLSTATE. Every e below may be NULL (no detail wanted).
 *
 * A drv_conn is used by one thread at a time. */
#ifndef CITRUS_DBCONN_DRIVER_H
#define CITRUS_DBCONN_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dsn.h"
#include "core/errdetail.h"
#include "core/value.h"
#include "sys/clock.h"

typedef struct drv_conn drv_conn;

/* What an SQLite connection may run (no effect on PostgreSQL, whose
 * sandbox is the role of its DSN). On both kinds an authorizer refuses
 * ATTACH and DETACH, VACUUM (and VACUUM INTO), load_extension() and every
 * PRAGMA outside a read-only allow list; extension loading is off,
 * SQLITE_LIMIT_ATTACHED is 0, SQLITE_DBCONFIG_DEFENSIVE is on (no
 * writable_schema, no writes to shadow tables), trusted_schema is off (a
 * view or trigger calls only innocuous functions) and foreign keys are
 * enforced (PRAGMA foreign_keys=ON, as PostgreSQL always does). A refused
 * statement is CITRUS_ESTMTDENIED, its message naming what was refused
 * ("ATTACH is not allowed on a shard").
 *
 * DRV_SANDBOX_QUERY (the zero value: the router, probes, anything that
 * does not ask for more) also refuses DROP (tables, indexes, views,
 * triggers), ALTER TABLE, CREATE TRIGGER, CREATE VIRTUAL TABLE and every
 * TEMP object (it would stay on a pooled connection, and a temp trigger
 * would run under the next request's statements); CREATE TABLE, INDEX and
 * VIEW are allowed. DRV_SANDBOX_SCHEMA (schema templates, provisioning):
 * all DDL, and PRAGMA user_version / application_id may be set. */
typedef enum { DRV_SANDBOX_QUERY = 0, DRV_SANDBOX_SCHEMA } drv_sandbox;

/* How to open a connection (NULL: all defaults). */
typedef struct drv_options {
    /* Bounds the connect (0 = 5000) and later drv_ping; also SQLite's busy
     * timeout (how long a statement waits for another writer's lock). */
    int64_t timeout_ms;
    /* What statement deadlines (drv_set_statement_timeout) and drv_probe's
     * latency are read from; NULL = clock_real(). Kept, not copied: it
     * must outlive the connection. */
    const sysclock *clock;
    /* SQLite: create the file when it is missing (provisioning); without
     * it a missing file is CITRUS_EUNAVAILABLE, so a typo in a DSN never
     * makes an empty database. No effect on PostgreSQL. */
    bool create;
    /* SQLite: what the connection may run (see drv_sandbox). */
    drv_sandbox sandbox;
} drv_options;

/* The process's DSN rules (core/dsn.h dsn_check: shards.tls_dir,
 * shards.socket_dirs, shards.allowed_hosts), copied; set once at start,
 * before any connection is opened (not thread-safe against drv_open).
 * NULL: the defaults (no TLS files, no Unix sockets, any TCP host).
 * CITRUS_EINVAL when a list is malformed or too long. */
int drv_set_dsn_policy(const dsn_policy *p, errdetail *e);
/* dsn_check under the process's rules: every DSN that enters the catalog
 * (registration, provisioner outputs) and every drv_open goes through it. */
int drv_dsn_check(const char *dsn, errdetail *e);

/* Opens a connection (dsn: sqlite:///path or a libpq DSN). An SQLite file
 * is put in WAL mode and its connection sandboxed (o->sandbox). 0, CITRUS_EINVAL (bad DSN),
 * CITRUS_EUNAVAILABLE (cannot connect, missing or not a database file), with e filled. */
int drv_open(const char *dsn, const drv_options *o, drv_conn **out, errdetail *e);
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

/* How long each later drv_exec (or drv_run_script: the whole script) may
 * run, ms (0: no limit, the default).
 * Past it the statement is cancelled (PostgreSQL: a cancel request, then
 * the server's answer is awaited up to the open timeout; SQLite: the
 * statement is interrupted) and drv_exec returns CITRUS_EQUERYTIMEOUT: the
 * statement was not applied (inside a transaction, the transaction is
 * aborted). When PostgreSQL does not answer the cancel in time either, the
 * connection is given up (broken) and the outcome is unknown:
 * CITRUS_ETIMEOUT. A lock wait on SQLite is bounded by the busy timeout
 * as before. */
void drv_set_statement_timeout(drv_conn *c, int64_t ms);

/* A hard deadline for what runs on this connection from now on: at_ms on
 * the connection's clock (clock_mono_ms of drv_options.clock; 0: none,
 * the default). Every later wait on the database (drv_exec,
 * drv_run_script, drv_ping, and the transaction verbs) ends at it at the
 * latest, whatever drv_set_statement_timeout says. Past it PostgreSQL is
 * sent no cancel (a server that does not answer in time would not answer
 * a cancel either, and PQcancel blocks): the connection is given up
 * (broken; a transaction in it never commits unless its COMMIT was on the
 * wire, the server rolls it back when it sees the connection closed) and
 * the call returns CITRUS_ETIMEOUT. SQLite interrupts the statement
 * (CITRUS_EQUERYTIMEOUT, nothing of it applied) and waits for another
 * writer's lock only until then. For the control plane, whose calls must
 * end within an API request's deadline (server.request_deadline_ms).
 * drv_open is bounded by drv_options.timeout_ms: give it what is left. */
void drv_set_deadline(drv_conn *c, int64_t at_ms);

/* A check that a statement's caller is still there (NULL: none, the
 * default): while a later drv_exec (or drv_run_script) waits on the
 * database, fn(ctx) is called every DRV_CANCEL_CHECK_MS of its run (not
 * before the first interval has passed, so a quick statement costs
 * nothing), from the thread running the statement. When it returns true
 * the statement is cancelled as for a timeout (PostgreSQL: a cancel
 * request and its answer awaited up to the open timeout; SQLite:
 * interrupted) and drv_exec returns CITRUS_ECLOSED: nothing of it applied
 * (inside a transaction, the transaction is aborted), the connection
 * usable, unless PostgreSQL did not answer the cancel either: then
 * CITRUS_ETIMEOUT and the connection is broken, as for a timeout. A lock
 * wait on SQLite is bounded by the busy timeout as before. */
#define DRV_CANCEL_CHECK_MS 50
typedef bool (*drv_cancel_fn)(void *ctx);
void drv_set_cancel_check(drv_conn *c, drv_cancel_fn fn, void *ctx);

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
             result_set *out, bool *truncated, int64_t *changes, errdetail *e);

/* BEGIN (SQLite: BEGIN IMMEDIATE, taking the write lock up front, waiting
 * up to the busy timeout) / COMMIT / ROLLBACK. The same on both backends:
 * drv_begin inside a transaction and drv_commit outside one are
 * CITRUS_EINVAL; drv_commit of a PostgreSQL transaction that had failed
 * rolls it back and is CITRUS_EINVAL; drv_rollback outside a transaction
 * does nothing. */
int drv_begin(drv_conn *c, errdetail *e);
int drv_commit(drv_conn *c, errdetail *e);
int drv_rollback(drv_conn *c, errdetail *e);
/* A custom setting (a dotted name such as "citrus.tenant") and its value,
 * for drv_begin_scoped. */
typedef struct drv_setting {
    const char *name, *value;
} drv_setting;

/* Opens a transaction in which each of the n settings has its value until
 * the transaction ends, for what runs in it to read with current_setting
 * (row-level security policies, column defaults): on PostgreSQL BEGIN and
 * SELECT set_config(name, value, true), ... sent as one script (one round
 * trip), the values quoted as literals. SQLite has no settings: with
 * always the call is drv_begin, without it does nothing (0, and still no
 * transaction: drv_in_transaction tells the caller whether to commit).
 * Errors as drv_begin's; when setting fails the transaction is rolled
 * back. */
int drv_begin_scoped(drv_conn *c, const drv_setting *set, size_t n, bool always, errdetail *e);
/* Whether a transaction is open (or failed and not yet rolled back). */
bool drv_in_transaction(drv_conn *c);

/* Whether the connection still works (cheap local check, no round trip:
 * PostgreSQL: PQstatus after reading whatever the server already sent,
 * such as its shutdown notice; false after CITRUS_EUNAVAILABLE). drv_ping
 * runs "SELECT 1" (SQLite: reads the schema, so a file that is no longer a
 * database fails) bounded by drv_open's timeout; 0 or CITRUS_EUNAVAILABLE. */
bool drv_alive(drv_conn *c);
int drv_ping(drv_conn *c, errdetail *e);

/* A replica's replication lag in ms and whether the database may serve as
 * a replica at all (*replica). PostgreSQL: now() -
 * pg_last_xact_replay_timestamp(), 0 when it has replayed all it received,
 * 10^12 when it is behind and has replayed nothing since it started;
 * *replica when it is in recovery (a primary, or a promoted replica, has a
 * history of its own). SQLite: 0, and *replica true (a file has no
 * replication to ask about: what the catalog calls a replica is one). */
int drv_replica_lag_ms(drv_conn *c, bool *replica, int64_t *lag_ms, errdetail *e);

/* ---- the control plane: provisioning, schema templates, health probes ---- */

/* Runs a script: statements separated by ";", without parameters, their
 * rows dropped; the first failing statement ends it. Outside a
 * transaction PostgreSQL runs a script as one implicit transaction (all or
 * nothing), SQLite statement by statement (those before the failing one
 * stay done). Errors as drv_exec's; drv_set_statement_timeout bounds the
 * whole script. */
int drv_run_script(drv_conn *c, const char *sql, errdetail *e);

/* The script inside one transaction (drv_begin, the script, drv_commit;
 * drv_rollback on error; both databases have transactional DDL): all of it
 * or none. sql must not end the transaction itself: a script that does is
 * CITRUS_EINVAL, but what it committed stays. */
int drv_run_script_tx(drv_conn *c, const char *sql, errdetail *e);

/* Runs one statement (drv_exec) and gives the first column of every row as
 * text in *rows (a malloc'd array of nrows malloc'd strings; free with
 * drv_free_column): TEXT and BLOB as their bytes (up to a NUL), INT in
 * decimal, REAL with %.17g, BOOL "t"/"f", NULL "". 0, or drv_exec's
 * error (CITRUS_ENOMEM too) with *rows NULL and *nrows 0. */
int drv_query_column(drv_conn *c, const char *sql, char ***rows, size_t *nrows, errdetail *e);
void drv_free_column(char **rows, size_t nrows);

/* name quoted as an SQL identifier for this database ("a""b" for a"b), to
 * put into a statement's text where a parameter cannot go (CREATE DATABASE
 * and the like). malloc'd; NULL when out of memory. */
char *drv_quote_ident(drv_conn *c, const char *name);

/* Whether dsn is reachable: opens a connection (o as for drv_open), pings
 * it and closes it. *latency_ms (may be NULL): the time all that took, on
 * o's clock. 0, CITRUS_EINVAL (bad DSN), or CITRUS_EUNAVAILABLE for
 * anything else, with e filled. */
int drv_probe(const char *dsn, const drv_options *o, int64_t *latency_ms, errdetail *e);

#endif
