/* tests/unit/test_shard_db.c — control-plane connections to shard
 * databases (provision/shard_db.c) on SQLite files and on a real PostgreSQL.
 *
 * SQLite databases live in a mkdtemp dir. PostgreSQL is a throwaway server
 * from support_pg (initdb in a temp dir, ephemeral loopback port, stopped
 * by PID at the end); without its binaries this binary fails. Unreachable
 * servers are a closed port (refused at once) and a socket that listens
 * but never answers (only connect_timeout ends the wait). */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "support_pg.h"

#include "citrus/errors.h"
#include "provision/shard_db.h"

static char tmpdir[PATH_MAX - 64];

/* ---- helpers ------------------------------------------------------------------ */

static void sqlite_dsn(const char *name, char *out, size_t len)
{
    snprintf(out, len, "sqlite://%s/%s", tmpdir, name);
}

static shard_db *must_open(const char *dsn, bool create)
{
    shard_db *db = NULL;
    char err[512] = "";
    int rc = shard_db_open(dsn, 5000, create, &db, err, sizeof(err));
    if (rc)
        fail_msg("shard_db_open %s: %d %s", dsn, rc, err);
    assert_non_null(db);
    return db;
}

static void must_exec(shard_db *db, const char *sql)
{
    char err[512] = "";
    int rc = shard_db_exec(db, sql, err, sizeof(err));
    if (rc)
        fail_msg("exec %s: %d %s", sql, rc, err);
}

/* The single value sql returns. */
static void assert_value(shard_db *db, const char *sql, const char *want)
{
    char **rows = NULL, err[512] = "";
    size_t n = 0;
    int rc = shard_db_query_column(db, sql, &rows, &n, err, sizeof(err));
    if (rc)
        fail_msg("query %s: %d %s", sql, rc, err);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0], want);
    shard_db_free_rows(rows, n);
}

/* A loopback socket that accepts connections into its backlog but never
 * answers: a server that hangs. */
static int silent_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* ---- both drivers ---------------------------------------------------------------- */

/* open/exec/query/exec_tx on an open database; identical SQL for both. */
static void exercise(shard_db *db)
{
    char **rows = NULL, err[512] = "";
    size_t n = 0;
    must_exec(db, "CREATE TABLE t (a TEXT, b INTEGER); "
                  "INSERT INTO t VALUES ('x', 1); INSERT INTO t VALUES (NULL, 2); "
                  "INSERT INTO t VALUES ('z', 3)");
    assert_int_equal(
        shard_db_query_column(db, "SELECT a FROM t ORDER BY b", &rows, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 3);
    assert_string_equal(rows[0], "x");
    assert_string_equal(rows[1], ""); /* NULL */
    assert_string_equal(rows[2], "z");
    shard_db_free_rows(rows, n);

    /* zero rows */
    rows = NULL;
    assert_int_equal(
        shard_db_query_column(db, "SELECT a FROM t WHERE b > 100", &rows, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 0);
    shard_db_free_rows(rows, n);

    /* errors carry the driver's message */
    err[0] = '\0';
    assert_int_equal(shard_db_exec(db, "INSERT INTO nosuch VALUES (1)", err, sizeof(err)),
                     CITRUS_EIO);
    assert_non_null(strstr(err, "nosuch"));
    err[0] = '\0';
    assert_int_equal(shard_db_query_column(db, "SELEC 1", &rows, &n, err, sizeof(err)), CITRUS_EIO);
    assert_true(err[0] != '\0');
    assert_null(rows);
    assert_int_equal(n, 0);

    /* exec_tx: all or nothing */
    assert_int_equal(shard_db_exec_tx(db,
                                      "INSERT INTO t VALUES ('y', 4); INSERT INTO t VALUES "
                                      "('w', 5)",
                                      err, sizeof(err)),
                     0);
    assert_value(db, "SELECT count(*) FROM t", "5");
    assert_int_equal(shard_db_exec_tx(db,
                                      "INSERT INTO t VALUES ('v', 6); INSERT INTO nosuch "
                                      "VALUES (1)",
                                      err, sizeof(err)),
                     CITRUS_EIO);
    assert_value(db, "SELECT count(*) FROM t", "5"); /* 'v' rolled back */
    /* the connection is usable after a failed transaction */
    must_exec(db, "INSERT INTO t VALUES ('u', 7)");
    assert_value(db, "SELECT count(*) FROM t", "6");

    /* a script may not end the transaction itself */
    err[0] = '\0';
    assert_int_equal(
        shard_db_exec_tx(db, "INSERT INTO t VALUES ('s', 8); COMMIT", err, sizeof(err)),
        CITRUS_EIO);
    assert_non_null(strstr(err, "transaction"));
    must_exec(db, "INSERT INTO t VALUES ('r', 9)"); /* and we are not stuck in one */
}

/* ---- SQLite ------------------------------------------------------------------------ */

static void test_sqlite_open_exec_query(void **state)
{
    char dsn[PATH_MAX], err[512] = "";
    sqlite_dsn("a.db", dsn, sizeof(dsn));
    shard_db *db = NULL;
    /* without create, a missing file is unreachable */
    assert_int_equal(shard_db_open(dsn, 1000, false, &db, err, sizeof(err)), CITRUS_EUNAVAILABLE);
    assert_null(db);
    assert_true(err[0] != '\0');
    db = must_open(dsn, true);
    assert_value(db, "PRAGMA journal_mode", "wal");
    exercise(db);
    shard_db_close(db);

    /* reopened without create: the data is there */
    db = must_open(dsn, false);
    assert_value(db, "SELECT count(*) FROM t", "8"); /* 7 rows + the one after COMMIT */
    shard_db_close(db);
}

static void test_sqlite_busy_timeout(void **state)
{
    char dsn[PATH_MAX], err[512] = "";
    sqlite_dsn("busy.db", dsn, sizeof(dsn));
    shard_db *holder = must_open(dsn, true);
    must_exec(holder, "CREATE TABLE t (a INTEGER)");
    must_exec(holder, "BEGIN IMMEDIATE; INSERT INTO t VALUES (1)");

    shard_db *db = NULL;
    assert_int_equal(shard_db_open(dsn, 300, false, &db, err, sizeof(err)), 0);
    int64_t t0 = mono_ms();
    assert_int_equal(shard_db_exec_tx(db, "INSERT INTO t VALUES (2)", err, sizeof(err)),
                     CITRUS_EIO);
    int64_t took = mono_ms() - t0;
    assert_true(took >= 250);  /* it waited for the lock ... */
    assert_true(took < 10000); /* ... but not forever */

    must_exec(holder, "COMMIT");
    assert_int_equal(shard_db_exec_tx(db, "INSERT INTO t VALUES (2)", err, sizeof(err)), 0);
    assert_value(db, "SELECT count(*) FROM t", "2");
    shard_db_close(db);
    shard_db_close(holder);
}

static void test_sqlite_not_a_database(void **state)
{
    char path[PATH_MAX], dsn[PATH_MAX + 16], err[512] = "";
    assert_int_equal(tmp_write_garbage(tmpdir, "garbage.db", path, sizeof(path)), 0);
    snprintf(dsn, sizeof(dsn), "sqlite://%s", path);
    shard_db *db = NULL;
    assert_int_equal(shard_db_open(dsn, 1000, false, &db, err, sizeof(err)), CITRUS_EIO);
    assert_null(db);
    double ms = -1;
    assert_int_equal(shard_db_ping(dsn, 1000, &ms, err, sizeof(err)), CITRUS_EUNAVAILABLE);
}

static void test_sqlite_ping(void **state)
{
    char dsn[PATH_MAX], err[512] = "";
    sqlite_dsn("ping.db", dsn, sizeof(dsn));
    double ms = -1;
    assert_int_equal(shard_db_ping(dsn, 1000, &ms, err, sizeof(err)), CITRUS_EUNAVAILABLE);
    shard_db_close(must_open(dsn, true));
    assert_int_equal(shard_db_ping(dsn, 1000, &ms, err, sizeof(err)), 0);
    assert_true(ms >= 0 && ms < 5000);
}

static void test_malformed_dsn(void **state)
{
    const char *bad[] = {"",
                         "mysql://u@h/db",
                         "sqlite:",
                         "nonsense",
                         "host=127.0.0.1 nosuchkeyword=1",
                         "postgresql://postgres@127.0.0.1:1/db?nosuchparam=1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        shard_db *db = NULL;
        char err[512] = "";
        double ms;
        int rc = shard_db_open(bad[i], 1000, true, &db, err, sizeof(err));
        if (rc != CITRUS_EINVAL)
            fail_msg("open \"%s\": %d (%s), want EINVAL", bad[i], rc, err);
        assert_null(db);
        assert_true(err[0] != '\0');
        assert_int_equal(shard_db_ping(bad[i], 1000, &ms, err, sizeof(err)), CITRUS_EINVAL);
    }
}

/* ---- PostgreSQL ----------------------------------------------------------------------- */

static void test_pg_open_exec_query(void **state)
{
    shard_db *db = must_open(pg.admin_dsn, false);
    must_exec(db, "DROP TABLE IF EXISTS t"); /* a NOTICE when absent: not an error */
    exercise(db);
    assert_value(db, "SELECT current_database()", "postgres");
    must_exec(db, "DROP TABLE t");
    shard_db_close(db);
}

static void test_pg_dsn_forms(void **state)
{
    char dsn[512];
    /* key=value conninfo */
    snprintf(dsn, sizeof(dsn), "host=127.0.0.1 port=%d user=postgres dbname=postgres", pg.port);
    shard_db *db = must_open(dsn, false);
    assert_value(db, "SELECT 40 + 2", "42");
    shard_db_close(db);
    /* a URI with parameters, connect_timeout among them (ours replaces it) */
    snprintf(dsn, sizeof(dsn),
             "postgres://postgres@127.0.0.1:%d/postgres?connect_timeout=100&application_name=t1",
             pg.port);
    db = must_open(dsn, false);
    assert_value(db, "SELECT current_setting('application_name')", "t1");
    shard_db_close(db);
    /* the URI without any parameter */
    db = must_open(pg.admin_dsn, false);
    shard_db_close(db);
}

static void test_pg_ping(void **state)
{
    double ms = -1;
    char err[512] = "";
    int rc = shard_db_ping(pg.admin_dsn, 5000, &ms, err, sizeof(err));
    if (rc)
        fail_msg("ping: %d %s", rc, err);
    assert_true(ms > 0 && ms < 5000);
}

static void test_pg_unreachable_closed_port(void **state)
{
    char dsn[128], err[512] = "";
    snprintf(dsn, sizeof(dsn), "postgresql://postgres@127.0.0.1:%d/postgres", pg_free_port());
    shard_db *db = NULL;
    int64_t t0 = mono_ms();
    assert_int_equal(shard_db_open(dsn, 2000, false, &db, err, sizeof(err)), CITRUS_EUNAVAILABLE);
    assert_null(db);
    assert_true(err[0] != '\0');
    double ms = -1;
    assert_int_equal(shard_db_ping(dsn, 2000, &ms, err, sizeof(err)), CITRUS_EUNAVAILABLE);
    assert_true(ms >= 0);
    assert_true(mono_ms() - t0 < 4000);
}

/* A server that accepts but never answers: connect_timeout (timeout_ms
 * rounded up to whole seconds, at least 2) is what ends the wait. */
static void test_pg_unreachable_silent(void **state)
{
    int port, fd = silent_listener(&port);
    char dsn[128], err[512] = "";
    snprintf(dsn, sizeof(dsn), "postgresql://postgres@127.0.0.1:%d/postgres", port);
    shard_db *db = NULL;
    int64_t t0 = mono_ms();
    assert_int_equal(shard_db_open(dsn, 1000, false, &db, err, sizeof(err)), CITRUS_EUNAVAILABLE);
    int64_t took = mono_ms() - t0;
    print_message("silent server: gave up after %lld ms: %s\n", (long long)took, err);
    assert_true(took >= 1500 && took < 8000);
    double ms = -1;
    assert_int_equal(shard_db_ping(dsn, 1000, &ms, err, sizeof(err)), CITRUS_EUNAVAILABLE);
    assert_true(ms >= 1500 && ms < 8000);
    close(fd);
}

/* ---- main --------------------------------------------------------------------------------- */

int main(void)
{
    if (tmp_dir_create(tmpdir, sizeof(tmpdir), "shard-db") != 0)
        return 1;
    const struct CMUnitTest lite[] = {
        cmocka_unit_test(test_sqlite_open_exec_query), cmocka_unit_test(test_sqlite_busy_timeout),
        cmocka_unit_test(test_sqlite_not_a_database),  cmocka_unit_test(test_sqlite_ping),
        cmocka_unit_test(test_malformed_dsn),
    };
    int failed = cmocka_run_group_tests_name("shard_db_sqlite", lite, NULL, NULL);
    const struct CMUnitTest pgt[] = {
        cmocka_unit_test(test_pg_open_exec_query),
        cmocka_unit_test(test_pg_dsn_forms),
        cmocka_unit_test(test_pg_ping),
        cmocka_unit_test(test_pg_unreachable_closed_port),
        cmocka_unit_test(test_pg_unreachable_silent),
    };
    failed +=
        cmocka_run_group_tests_name("shard_db_postgres", pgt, pg_group_setup, pg_group_teardown);
    tmp_dir_remove(tmpdir);
    return failed;
}
