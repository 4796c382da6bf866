/* tests/unit/test_pg_stmts.c — named prepared statements on PostgreSQL
 * connections (the cache itself: test_stmt_cache.c): the driver against a
 * real server (dbconn/driver_pg.c): what gets prepared, what is
 * deallocated on eviction, and recovery when the session loses a statement
 * or a statement's result type changes. What the server holds is read from
 * pg_prepared_statements on the same session. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "support_pg.h"

#include "citrus/errors.h"
#include "dbconn/driver.h"

/* ---- the driver on PostgreSQL ----------------------------------------------------- */

static drv_conn *open_pg(size_t cache)
{
    drv_conn *c = NULL;
    errdetail e;
    if (drv_open(pg.admin_dsn, NULL, &c, &e) != 0)
        fail_msg("drv_open: %s", e.message);
    drv_set_statement_cache(c, cache);
    return c;
}

static void run(drv_conn *c, const char *sql, const value *params, size_t n, result_set *rs)
{
    errdetail e;
    int rc = drv_exec(c, sql, params, n, 0, rs, NULL, NULL, &e);
    if (rc)
        fail_msg("exec \"%s\": %d %s (SQLSTATE %s)", sql, rc, e.message, e.sqlstate);
}

static int64_t one_int(drv_conn *c, const char *sql, const value *params, size_t n)
{
    result_set rs;
    rs_init(&rs);
    run(c, sql, params, n, &rs);
    assert_int_equal(rs.nrows, 1);
    assert_true(val_ok(rs_cell(&rs, 0, 0), VAL_INT));
    int64_t v = rs_cell(&rs, 0, 0)->u.i;
    rs_free(&rs);
    return v;
}

/* How many statements with exactly this text the session holds (this
 * query is itself a statement, and is cached too). */
static int64_t held(drv_conn *c, const char *text)
{
    value v = val_text(text, strlen(text));
    int64_t n =
        one_int(c, "SELECT count(*)::int8 FROM pg_prepared_statements WHERE statement = $1", &v, 1);
    val_free(&v);
    return n;
}

static const char ADD1[] = "SELECT $1::int8 + 1";

static void test_driver_prepares_queries_only(void **state)
{
    (void)state;
    drv_conn *c = open_pg(8);
    for (int64_t i = 0; i < 5; i++) {
        value v = val_int(i * 10);
        assert_int_equal(one_int(c, ADD1, &v, 1), i * 10 + 1);
    }
    assert_int_equal(held(c, ADD1), 1); /* prepared once, run five times */
    run(c, "CREATE TEMP TABLE notes (n int)", NULL, 0, NULL);
    run(c, "SET application_name = 'citrus-test'", NULL, 0, NULL);
    assert_int_equal(held(c, "CREATE TEMP TABLE notes (n int)"), 0);
    assert_int_equal(held(c, "SET application_name = 'citrus-test'"), 0);
    value v = val_int(7);
    run(c, "INSERT INTO notes VALUES ($1::int)", &v, 1, NULL);
    assert_int_equal(held(c, "INSERT INTO notes VALUES ($1::int)"), 1);
    drv_close(c);

    /* without a cache nothing is prepared */
    c = open_pg(0);
    value w = val_int(1);
    assert_int_equal(one_int(c, ADD1, &w, 1), 2);
    assert_int_equal(held(c, ADD1), 0);
    drv_close(c);
}

static void test_driver_evicts_and_deallocates(void **state)
{
    (void)state;
    drv_conn *c = open_pg(2);
    assert_int_equal(one_int(c, "SELECT 1::int8", NULL, 0), 1);
    assert_int_equal(one_int(c, "SELECT 2::int8", NULL, 0), 2);
    assert_int_equal(one_int(c, "SELECT 3::int8", NULL, 0), 3); /* evicts SELECT 1 */
    /* held() is a fourth statement: it evicts SELECT 2 */
    value texts[] = {val_text("SELECT 1::int8", 14), val_text("SELECT 2::int8", 14),
                     val_text("SELECT 3::int8", 14)};
    assert_int_equal(one_int(c,
                             "SELECT count(*)::int8 FROM pg_prepared_statements "
                             "WHERE statement IN ($1, $2, $3)",
                             texts, 3),
                     1);
    for (size_t i = 0; i < 3; i++)
        val_free(&texts[i]);
    assert_int_equal(
        one_int(c, "SELECT count(*)::int8 FROM pg_prepared_statements WHERE name LIKE 'citrus_s%'",
                NULL, 0),
        2); /* never more than the cache holds */
    drv_close(c);
}

static void test_driver_session_lost_statements(void **state)
{
    (void)state;
    drv_conn *c = open_pg(8);
    value v = val_int(1);
    assert_int_equal(one_int(c, ADD1, &v, 1), 2);
    run(c, "DEALLOCATE ALL", NULL, 0, NULL);
    assert_int_equal(held(c, ADD1), 0);
    /* outside a transaction: prepared again and run, transparently */
    v = val_int(41);
    assert_int_equal(one_int(c, ADD1, &v, 1), 42);
    assert_int_equal(held(c, ADD1), 1);

    /* inside one the error is the caller's (the transaction is aborted) */
    errdetail e;
    assert_int_equal(drv_begin(c, &e), 0);
    run(c, "DISCARD PLANS", NULL, 0, NULL); /* plans only: statements stay */
    assert_int_equal(one_int(c, ADD1, &v, 1), 42);
    run(c, "DEALLOCATE ALL", NULL, 0, NULL);
    result_set rs;
    rs_init(&rs);
    assert_int_equal(drv_exec(c, ADD1, &v, 1, 0, &rs, NULL, NULL, &e), CITRUS_EINVAL);
    assert_string_equal(e.sqlstate, "26000");
    assert_int_equal(rs.nrows, 0);
    assert_int_equal(drv_rollback(c, &e), 0);
    assert_true(drv_alive(c));
    assert_int_equal(one_int(c, ADD1, &v, 1), 42); /* and afterwards it works again */
    drv_close(c);
}

static void test_driver_result_type_change(void **state)
{
    (void)state;
    drv_conn *c = open_pg(8);
    run(c, "CREATE TEMP TABLE shapes (a int8)", NULL, 0, NULL);
    run(c, "INSERT INTO shapes VALUES (1)", NULL, 0, NULL);
    result_set rs;
    rs_init(&rs);
    run(c, "SELECT * FROM shapes", NULL, 0, &rs);
    assert_int_equal(rs.ncols, 1);
    rs_free(&rs);
    run(c, "ALTER TABLE shapes ADD COLUMN b int8 DEFAULT 7", NULL, 0, NULL);
    rs_init(&rs);
    run(c, "SELECT * FROM shapes", NULL, 0, &rs); /* re-prepared, run again */
    assert_int_equal(rs.ncols, 2);
    assert_int_equal(rs.nrows, 1);
    assert_true(val_ok(rs_cell(&rs, 0, 1), VAL_INT));
    assert_int_equal(rs_cell(&rs, 0, 1)->u.i, 7);
    rs_free(&rs);
    assert_int_equal(held(c, "SELECT * FROM shapes"), 1); /* the old one deallocated */
    drv_close(c);
}

static void test_driver_bad_statement_not_kept(void **state)
{
    (void)state;
    drv_conn *c = open_pg(8);
    errdetail e;
    result_set rs;
    rs_init(&rs);
    assert_int_equal(drv_exec(c, "SELECT FROM WHERE", NULL, 0, 0, &rs, NULL, NULL, &e),
                     CITRUS_EINVAL);
    assert_string_equal(e.sqlstate, "42601");
    assert_non_null(strstr(e.message, "syntax error"));
    value v = val_int(1);
    assert_int_equal(drv_exec(c, "SELECT $1::int8; SELECT 2", &v, 1, 0, &rs, NULL, NULL, &e),
                     CITRUS_EINVAL);
    assert_int_equal(
        one_int(c, "SELECT count(*)::int8 FROM pg_prepared_statements WHERE name LIKE 'citrus_s%'",
                NULL, 0),
        1); /* only the count itself */
    assert_true(drv_alive(c));
    drv_close(c);
}

int main(void)
{
    const struct CMUnitTest pt[] = {
        cmocka_unit_test(test_driver_prepares_queries_only),
        cmocka_unit_test(test_driver_evicts_and_deallocates),
        cmocka_unit_test(test_driver_session_lost_statements),
        cmocka_unit_test(test_driver_result_type_change),
        cmocka_unit_test(test_driver_bad_statement_not_kept),
    };
    return cmocka_run_group_tests_name("pg_stmts_driver", pt, pg_group_setup, pg_group_teardown);
}
