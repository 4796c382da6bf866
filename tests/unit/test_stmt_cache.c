/* tests/unit/test_stmt_cache.c — the prepared-statement cache
 * (dbconn/stmt_cache.c), and the SQLite driver keeping its statements in it
 * (dbconn/driver_sqlite.c): one statement per text, reset after every run,
 * finalized on eviction and close, prepared again by SQLite when the schema
 * changes under it. What the database holds is read with sqlite3_next_stmt
 * on the connection's own handle. (PostgreSQL: test_pg_stmts.c.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "support_pg.h"

#include "citrus/errors.h"
#include "dbconn/driver.h"
#include "dbconn/driver_ops.h" /* c->handle, the sqlite3 * */
#include "dbconn/stmt_cache.h"

/* ---- the cache ------------------------------------------------------------------- */

static int released;
static void count_release(void *h)
{
    (void)h;
    released++;
}

static void test_cache_find_add(void **state)
{
    (void)state;
    stmt_cache *s = stmt_cache_new(4, NULL);
    assert_non_null(s);
    const unsigned t_text[] = {0}, t_bytea[] = {17};
    assert_null(stmt_cache_find(s, "SELECT $1", t_text, 1));
    const stmt_ref *added;
    stmt_ref ev;
    assert_int_equal(stmt_cache_add(s, "SELECT $1", t_text, 1, NULL, &added, &ev), 0);
    assert_string_equal(added->name, "citrus_s1");
    assert_string_equal(ev.name, "");
    assert_string_equal(stmt_cache_find(s, "SELECT $1", t_text, 1)->name, "citrus_s1");
    /* the same text with other types, or fewer, is another statement */
    assert_null(stmt_cache_find(s, "SELECT $1", t_bytea, 1));
    assert_null(stmt_cache_find(s, "SELECT $1", NULL, 0));
    assert_null(stmt_cache_find(s, "SELECT $1 ", t_text, 1));
    assert_int_equal(stmt_cache_add(s, "SELECT $1", t_bytea, 1, NULL, &added, &ev), 0);
    assert_string_equal(added->name, "citrus_s2");
    assert_string_equal(stmt_cache_find(s, "SELECT $1", t_bytea, 1)->name, "citrus_s2");
    assert_string_equal(stmt_cache_find(s, "SELECT $1", t_text, 1)->name, "citrus_s1");
    assert_int_equal(stmt_cache_count(s), 2);
    stmt_cache_free(s);
    assert_null(stmt_cache_new(0, NULL));
}

static void test_cache_evicts_least_recent(void **state)
{
    (void)state;
    released = 0;
    int a, b, c;
    stmt_cache *s = stmt_cache_new(2, count_release);
    const stmt_ref *added;
    stmt_ref ev;
    assert_int_equal(stmt_cache_add(s, "A", NULL, 0, &a, &added, &ev), 0);
    assert_int_equal(stmt_cache_add(s, "B", NULL, 0, &b, &added, &ev), 0);
    assert_true(stmt_cache_full(s));
    assert_ptr_equal(stmt_cache_find(s, "A", NULL, 0)->handle, &a); /* A is now the newest */
    assert_int_equal(stmt_cache_add(s, "C", NULL, 0, &c, &added, &ev), 0);
    assert_string_equal(ev.name, "citrus_s2"); /* B went, handed back unreleased */
    assert_ptr_equal(ev.handle, &b);
    assert_int_equal(released, 0);
    assert_string_equal(added->name, "citrus_s3");
    assert_null(stmt_cache_find(s, "B", NULL, 0));
    assert_string_equal(stmt_cache_find(s, "A", NULL, 0)->name, "citrus_s1");
    assert_string_equal(stmt_cache_find(s, "C", NULL, 0)->name, "citrus_s3");
    assert_int_equal(stmt_cache_count(s), 2);

    stmt_cache_drop(s, "citrus_s1");  /* released */
    stmt_cache_drop(s, "citrus_s99"); /* unknown: nothing */
    assert_int_equal(released, 1);
    assert_int_equal(stmt_cache_count(s), 1);
    assert_null(stmt_cache_find(s, "A", NULL, 0));
    assert_int_equal(stmt_cache_add(s, "A", NULL, 0, &a, &added, &ev), 0);
    assert_string_equal(ev.name, ""); /* a free slot: nothing evicted */
    assert_null(ev.handle);
    assert_string_equal(added->name, "citrus_s4"); /* names are never reused */
    stmt_cache_clear(s);
    assert_int_equal(released, 3);
    assert_int_equal(stmt_cache_count(s), 0);
    assert_null(stmt_cache_find(s, "C", NULL, 0));
    assert_int_equal(stmt_cache_add(s, "D", NULL, 0, &a, &added, &ev), 0);
    stmt_cache_free(s); /* releases what it still holds */
    assert_int_equal(released, 4);
}

/* ---- the SQLite driver ------------------------------------------------------------ */

static char tmpdir[256];
static char dsn[512];

static int lite_setup(void **state)
{
    (void)state;
    if (tmp_dir_create(tmpdir, sizeof(tmpdir), "stmts") != 0)
        return -1;
    snprintf(dsn, sizeof(dsn), "sqlite://%s/shard.db", tmpdir);
    drv_conn *db = NULL;
    if (drv_open(dsn, &(drv_options){.create = true}, &db, NULL) != 0)
        return -1;
    drv_close(db);
    return 0;
}

static int lite_teardown(void **state)
{
    (void)state;
    tmp_dir_remove(tmpdir);
    return 0;
}

static drv_conn *open_lite(size_t cache)
{
    drv_conn *c = NULL;
    errdetail e;
    /* the schema sandbox: these tests change tables */
    if (drv_open(dsn, &(drv_options){.sandbox = DRV_SANDBOX_SCHEMA}, &c, &e) != 0)
        fail_msg("drv_open: %s", e.message);
    drv_set_statement_cache(c, cache);
    return c;
}

/* Runs sql (parameters: n ints), failing the test on error; the rows in rs
 * when given. */
static void run(drv_conn *c, const char *sql, const int64_t *ints, size_t n, result_set *rs)
{
    value params[4];
    for (size_t i = 0; i < n; i++)
        params[i] = val_int(ints[i]);
    result_set local;
    rs_init(&local);
    errdetail e;
    int rc = drv_exec(c, sql, params, n, 0, rs ? rs : &local, NULL, NULL, &e);
    rs_free(&local);
    if (rc)
        fail_msg("%s: %d %s", sql, rc, e.message);
}

/* The statements the connection holds, and the first one. */
static int live_statements(drv_conn *c, sqlite3_stmt **first)
{
    int n = 0;
    sqlite3_stmt *st = sqlite3_next_stmt(c->handle, NULL);
    if (first)
        *first = st;
    for (; st; st = sqlite3_next_stmt(c->handle, st))
        n++;
    return n;
}

static void test_lite_keeps_one_statement_per_text(void **state)
{
    (void)state;
    drv_conn *c = open_lite(8);
    run(c, "DROP TABLE IF EXISTS t", NULL, 0, NULL);
    run(c, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", NULL, 0, NULL);
    drv_set_statement_cache(c, 8); /* a fresh cache: the DDL above is gone */
    assert_int_equal(live_statements(c, NULL), 0);
    for (int64_t i = 1; i <= 5; i++)
        run(c, "INSERT INTO t (id, v) VALUES ($1, 'x')", &i, 1, NULL);
    sqlite3_stmt *ins;
    assert_int_equal(live_statements(c, &ins), 1);
    assert_int_equal(sqlite3_stmt_status(ins, SQLITE_STMTSTATUS_RUN, 0), 5); /* ran 5 times */
    assert_false(sqlite3_stmt_busy(ins));                                    /* reset after */
    /* one row short of the end: a kept SELECT cut by max_rows is reset,
     * so no read stays open (a checkpoint from another connection can
     * finish) */
    result_set rs;
    rs_init(&rs);
    bool truncated = false;
    errdetail e;
    assert_int_equal(
        drv_exec(c, "SELECT id FROM t ORDER BY id", NULL, 0, 2, &rs, &truncated, NULL, &e), 0);
    assert_true(truncated);
    assert_int_equal(rs.nrows, 2);
    rs_free(&rs);
    assert_int_equal(live_statements(c, NULL), 2);
    for (sqlite3_stmt *st = sqlite3_next_stmt(c->handle, NULL); st;
         st = sqlite3_next_stmt(c->handle, st))
        assert_false(sqlite3_stmt_busy(st));
    drv_conn *other = open_lite(0);
    /* (the C call: the sandbox refuses PRAGMA wal_checkpoint) SQLITE_OK,
     * not SQLITE_BUSY: no reader held it back */
    assert_int_equal(
        sqlite3_wal_checkpoint_v2(other->handle, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL),
        SQLITE_OK);
    assert_int_equal(live_statements(other, NULL), 0); /* no cache: nothing kept */
    drv_close(other);
    drv_close(c);
}

static void test_lite_evicts_and_finalizes(void **state)
{
    (void)state;
    drv_conn *c = open_lite(3);
    char sql[64];
    for (int i = 0; i < 7; i++) {
        snprintf(sql, sizeof(sql), "SELECT %d AS n", i);
        run(c, sql, NULL, 0, NULL);
        assert_int_equal(live_statements(c, NULL), i < 3 ? i + 1 : 3);
    }
    /* errors are not kept: a syntax error, two statements in one call */
    errdetail e;
    assert_int_equal(drv_exec(c, "SELEC 1", NULL, 0, 0, NULL, NULL, NULL, &e), CITRUS_EINVAL);
    assert_int_equal(drv_exec(c, "SELECT 1; SELECT 2", NULL, 0, 0, NULL, NULL, NULL, &e),
                     CITRUS_EINVAL);
    assert_int_equal(live_statements(c, NULL), 3);
    drv_set_statement_cache(c, 0); /* off: everything kept is finalized */
    assert_int_equal(live_statements(c, NULL), 0);
    drv_close(c);
}

static void test_lite_schema_change_under_a_kept_statement(void **state)
{
    (void)state;
    drv_conn *c = open_lite(8);
    run(c, "DROP TABLE IF EXISTS s", NULL, 0, NULL);
    run(c, "CREATE TABLE s (a INTEGER)", NULL, 0, NULL);
    run(c, "INSERT INTO s VALUES (1)", NULL, 0, NULL);
    result_set rs;
    rs_init(&rs);
    run(c, "SELECT * FROM s", NULL, 0, &rs);
    assert_int_equal(rs.ncols, 1);
    rs_free(&rs);
    drv_conn *other = open_lite(0); /* another connection changes the schema */
    run(other, "ALTER TABLE s ADD COLUMN b TEXT DEFAULT 'new'", NULL, 0, NULL);
    drv_close(other);
    rs_init(&rs);
    run(c, "SELECT * FROM s", NULL, 0, &rs);
    assert_int_equal(rs.ncols, 2);
    assert_string_equal(rs.columns[1], "b");
    assert_int_equal(rs.nrows, 1);
    assert_string_equal(rs.cells[1].u.s.p, "new");
    rs_free(&rs);
    /* a table dropped under a kept statement: the error, then it works again */
    run(c, "DROP TABLE s", NULL, 0, NULL);
    errdetail e;
    assert_int_equal(drv_exec(c, "SELECT * FROM s", NULL, 0, 0, NULL, NULL, NULL, &e),
                     CITRUS_EINVAL);
    assert_non_null(strstr(e.message, "no such table"));
    run(c, "CREATE TABLE s (x TEXT, y TEXT, z TEXT)", NULL, 0, NULL);
    rs_init(&rs);
    run(c, "SELECT * FROM s", NULL, 0, &rs);
    assert_int_equal(rs.ncols, 3);
    rs_free(&rs);
    drv_close(c);
}

int main(void)
{
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_cache_find_add),
        cmocka_unit_test(test_cache_evicts_least_recent),
    };
    int failed = cmocka_run_group_tests_name("stmt_cache", pure, NULL, NULL);
    const struct CMUnitTest lt[] = {
        cmocka_unit_test(test_lite_keeps_one_statement_per_text),
        cmocka_unit_test(test_lite_evicts_and_finalizes),
        cmocka_unit_test(test_lite_schema_change_under_a_kept_statement),
    };
    failed += cmocka_run_group_tests_name("stmt_cache_sqlite", lt, lite_setup, lite_teardown);
    return failed;
}
