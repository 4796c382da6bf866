/* provision/shard_db.c — control-plane connections to a shard's database.
 *
 * One type over two drivers: SQLite (a file, opened with a busy timeout of
 * timeout_ms; WAL mode when we create it) and PostgreSQL (libpq). The DSN
 * is checked with dsn_parse first, so a malformed one is CITRUS_EINVAL and
 * never reaches a driver.
 *
 * PostgreSQL: connected by pg_connect (the DSN's own options, our
 * connect_timeout in place of its own). Scripts run with PQexec (several
 * statements in one simple query). No statement_timeout is set: migration
 * scripts may legitimately run long. shard_db_ping's SELECT 1 alone is
 * bounded (async send + poll), so a stalled server cannot hang a health
 * check.
 *
 * A shard_db is used by one thread at a time. */
#include "provision/shard_db.h"

#include <limits.h>
#include <libpq-fe.h>
#include <poll.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "citrus/errors.h"
#include "core/dsn.h"
#include "core/errfmt.h"
#include "dbconn/pg_connect.h"

struct shard_db {
    dsn_kind kind;
    sqlite3 *lite;
    PGconn *pg;
};

/* ---- helpers ------------------------------------------------------------- */

/* A failed statement: "<message>[: <detail>] (SQLSTATE xxxxx)"; libpq's
 * connection message when the result has no fields (connection lost). */
static void pg_result_errfmt(char *err, size_t errlen, const PGresult *r, const PGconn *c)
{
    const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!primary) {
        pg_message(err, errlen, "", r ? PQresultErrorMessage(r) : PQerrorMessage(c));
        return;
    }
    const char *detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    errfmt(err, errlen, "%s%s%s (SQLSTATE %s)", primary, detail ? ": " : "", detail ? detail : "",
           state ? state : "?");
}

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* ---- SQLite --------------------------------------------------------------- */

static int lite_rc_to_err(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
        return CITRUS_EIO;
    default:
        return CITRUS_EUNAVAILABLE;
    }
}

static int lite_open(const char *path, int64_t timeout_ms, bool create, shard_db *db, char *err,
                     size_t errlen)
{
    int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path, &db->lite, flags, NULL);
    if (rc != SQLITE_OK) {
        errfmt(err, errlen, "sqlite open %s: %s", path,
               db->lite ? sqlite3_errmsg(db->lite) : sqlite3_errstr(rc));
        return lite_rc_to_err(rc);
    }
    int64_t busy = timeout_ms < 0 ? 0 : timeout_ms > INT_MAX ? INT_MAX : timeout_ms;
    sqlite3_busy_timeout(db->lite, (int)busy);
    sqlite3_extended_result_codes(db->lite, 1);
    /* The open is lazy: reading the schema is what finds a non-database. */
    const char *probe = create ? "PRAGMA journal_mode=WAL" : "SELECT count(*) FROM sqlite_master";
    rc = sqlite3_exec(db->lite, probe, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        errfmt(err, errlen, "sqlite %s: %s", path, sqlite3_errmsg(db->lite));
        return lite_rc_to_err(rc);
    }
    return 0;
}

static int lite_exec(shard_db *db, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(db->lite, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    errfmt(err, errlen, "%s", msg ? msg : sqlite3_errmsg(db->lite));
    sqlite3_free(msg);
    return CITRUS_EIO;
}

static int rows_push(char ***rows, size_t *n, size_t *cap, const char *s)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        char **r = realloc(*rows, ncap * sizeof(*r));
        if (!r)
            return CITRUS_ENOMEM;
        *rows = r;
        *cap = ncap;
    }
    char *copy = strdup(s ? s : "");
    if (!copy)
        return CITRUS_ENOMEM;
    (*rows)[(*n)++] = copy;
    return 0;
}

static int lite_query_column(shard_db *db, const char *sql, char ***rows, size_t *nrows, char *err,
                             size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db->lite, sql, -1, &st, NULL) != SQLITE_OK) {
        errfmt(err, errlen, "%s", sqlite3_errmsg(db->lite));
        return CITRUS_EIO;
    }
    size_t cap = 0;
    int rc = 0, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *v =
            sqlite3_column_count(st) > 0 ? (const char *)sqlite3_column_text(st, 0) : NULL;
        if ((rc = rows_push(rows, nrows, &cap, v)) != 0) {
            errfmt(err, errlen, "out of memory");
            break;
        }
    }
    if (rc == 0 && step != SQLITE_DONE) {
        errfmt(err, errlen, "%s", sqlite3_errmsg(db->lite));
        rc = CITRUS_EIO;
    }
    sqlite3_finalize(st);
    return rc;
}

/* BEGIN IMMEDIATE takes the write lock up front (waiting up to the busy
 * timeout) instead of failing halfway when another writer holds it. */
static int lite_exec_tx(shard_db *db, const char *sql, char *err, size_t errlen)
{
    int rc = lite_exec(db, "BEGIN IMMEDIATE", err, errlen);
    if (rc)
        return rc;
    rc = lite_exec(db, sql, err, errlen);
    if (rc == 0 && sqlite3_get_autocommit(db->lite)) {
        errfmt(err, errlen,
               "the script ended the transaction itself (BEGIN/COMMIT/ROLLBACK are not allowed)");
        return CITRUS_EIO;
    }
    if (rc == 0)
        rc = lite_exec(db, "COMMIT", err, errlen);
    if (rc && !sqlite3_get_autocommit(db->lite))
        sqlite3_exec(db->lite, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* ---- PostgreSQL ------------------------------------------------------------ */

/* libpq prints NOTICEs ("relation already exists, skipping") on stderr by
 * default; they are not errors, so they are dropped. */
static int pg_open(const char *dsn, int64_t timeout_ms, shard_db *db, char *err, size_t errlen)
{
    return pg_connect(dsn, timeout_ms, false, &db->pg, err, errlen);
}

static bool pg_result_ok(const PGresult *r)
{
    ExecStatusType s = PQresultStatus(r);
    return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK || s == PGRES_EMPTY_QUERY;
}

static int pg_exec(shard_db *db, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(db->pg, sql);
    int rc = 0;
    if (!r || !pg_result_ok(r)) {
        pg_result_errfmt(err, errlen, r, db->pg);
        rc = CITRUS_EIO;
    }
    PQclear(r);
    return rc;
}

static int pg_query_column(shard_db *db, const char *sql, char ***rows, size_t *nrows, char *err,
                           size_t errlen)
{
    PGresult *r = PQexec(db->pg, sql);
    if (!r || !pg_result_ok(r)) {
        pg_result_errfmt(err, errlen, r, db->pg);
        PQclear(r);
        return CITRUS_EIO;
    }
    size_t cap = 0;
    int rc = 0;
    int n = PQresultStatus(r) == PGRES_TUPLES_OK && PQnfields(r) > 0 ? PQntuples(r) : 0;
    for (int i = 0; i < n && rc == 0; i++)
        rc = rows_push(rows, nrows, &cap, PQgetisnull(r, i, 0) ? "" : PQgetvalue(r, i, 0));
    if (rc)
        errfmt(err, errlen, "out of memory");
    PQclear(r);
    return rc;
}

static int pg_exec_tx(shard_db *db, const char *sql, char *err, size_t errlen)
{
    int rc = pg_exec(db, "BEGIN", err, errlen);
    if (rc)
        return rc;
    rc = pg_exec(db, sql, err, errlen);
    if (rc == 0 && PQtransactionStatus(db->pg) != PQTRANS_INTRANS) {
        errfmt(err, errlen,
               "the script ended the transaction itself (BEGIN/COMMIT/ROLLBACK are not allowed)");
        rc = CITRUS_EIO;
    }
    if (rc == 0)
        return pg_exec(db, "COMMIT", err, errlen);
    if (PQtransactionStatus(db->pg) != PQTRANS_IDLE) {
        PGresult *r = PQexec(db->pg, "ROLLBACK");
        PQclear(r);
    }
    return rc;
}

/* SELECT 1 sent asynchronously and waited for until deadline_ms. */
static int pg_select1(PGconn *c, double deadline_ms, char *err, size_t errlen)
{
    if (!PQsendQuery(c, "SELECT 1")) {
        pg_message(err, errlen, "", PQerrorMessage(c));
        return CITRUS_EUNAVAILABLE;
    }
    while (PQisBusy(c)) {
        int wait = (int)(deadline_ms - mono_ms());
        if (wait <= 0) {
            errfmt(err, errlen, "SELECT 1: no answer in time");
            return CITRUS_EUNAVAILABLE;
        }
        struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
        if (poll(&p, 1, wait) < 0 || !PQconsumeInput(c)) {
            pg_message(err, errlen, "", PQerrorMessage(c));
            return CITRUS_EUNAVAILABLE;
        }
    }
    int rc = 0;
    for (PGresult *r; (r = PQgetResult(c)) != NULL; PQclear(r)) {
        if (rc == 0 && !pg_result_ok(r)) {
            pg_result_errfmt(err, errlen, r, c);
            rc = CITRUS_EUNAVAILABLE;
        }
    }
    return rc;
}

/* ---- the interface ------------------------------------------------------------- */

int shard_db_open(const char *dsn, int64_t timeout_ms, bool create, shard_db **out, char *err,
                  size_t errlen)
{
    *out = NULL;
    dsn_info info;
    if (!dsn || dsn_parse(dsn, &info, err, errlen) != 0) {
        if (!dsn)
            errfmt(err, errlen, "no DSN");
        return CITRUS_EINVAL;
    }
    shard_db *db = calloc(1, sizeof(*db));
    if (!db) {
        errfmt(err, errlen, "out of memory");
        return CITRUS_ENOMEM;
    }
    db->kind = info.kind;
    int rc = info.kind == DSN_SQLITE ? lite_open(info.path, timeout_ms, create, db, err, errlen)
                                     : pg_open(dsn, timeout_ms, db, err, errlen);
    if (rc) {
        shard_db_close(db);
        return rc;
    }
    *out = db;
    return 0;
}

void shard_db_close(shard_db *db)
{
    if (!db)
        return;
    if (db->lite)
        sqlite3_close_v2(db->lite);
    if (db->pg)
        PQfinish(db->pg);
    free(db);
}

int shard_db_exec(shard_db *db, const char *sql, char *err, size_t errlen)
{
    return db->kind == DSN_SQLITE ? lite_exec(db, sql, err, errlen) : pg_exec(db, sql, err, errlen);
}

int shard_db_query_column(shard_db *db, const char *sql, char ***rows, size_t *nrows, char *err,
                          size_t errlen)
{
    *rows = NULL;
    *nrows = 0;
    int rc = db->kind == DSN_SQLITE ? lite_query_column(db, sql, rows, nrows, err, errlen)
                                    : pg_query_column(db, sql, rows, nrows, err, errlen);
    if (rc) {
        shard_db_free_rows(*rows, *nrows);
        *rows = NULL;
        *nrows = 0;
    }
    return rc;
}

void shard_db_free_rows(char **rows, size_t nrows)
{
    for (size_t i = 0; i < nrows; i++)
        free(rows[i]);
    free(rows);
}

int shard_db_exec_tx(shard_db *db, const char *sql, char *err, size_t errlen)
{
    return db->kind == DSN_SQLITE ? lite_exec_tx(db, sql, err, errlen)
                                  : pg_exec_tx(db, sql, err, errlen);
}

struct pg_conn *shard_db_pg(shard_db *db)
{
    return db ? db->pg : NULL;
}

int shard_db_ping(const char *dsn, int64_t timeout_ms, double *latency_ms, char *err, size_t errlen)
{
    double t0 = mono_ms();
    double deadline = t0 + (double)(timeout_ms > 0 ? timeout_ms : 5000);
    shard_db *db = NULL;
    int rc = shard_db_open(dsn, timeout_ms, false, &db, err, errlen);
    if (rc == 0 && db->kind == DSN_POSTGRES) {
        rc = pg_select1(db->pg, deadline, err, errlen);
    } else if (rc == 0) {
        char **rows = NULL;
        size_t n = 0;
        rc = shard_db_query_column(db, "SELECT 1", &rows, &n, err, errlen);
        shard_db_free_rows(rows, n);
        if (rc)
            rc = CITRUS_EUNAVAILABLE;
    }
    if (rc == CITRUS_EIO || rc == CITRUS_ENOMEM)
        rc = CITRUS_EUNAVAILABLE;
    if (latency_ms)
        *latency_ms = mono_ms() - t0;
    shard_db_close(db);
    return rc;
}
