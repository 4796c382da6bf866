/* tests/unit/test_sqlword.c — core/sqlword.c: a statement's first keyword,
 * and the router's read test built on it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "core/sqlword.h"
#include "router/router.h"

static const char *const QUERIES[] = {"select", "values", "table"};

static bool first_is_query(const char *sql)
{
    return sql_first_word_in(sql, QUERIES, 3);
}

static void test_first_word(void **state)
{
    (void)state;
    assert_true(first_is_query("SELECT 1"));
    assert_true(first_is_query("select\n1"));
    assert_true(first_is_query("  \t\r\n\f\vSeLeCt 1"));
    assert_true(first_is_query("((SELECT 1) UNION (SELECT 2))"));
    assert_true(first_is_query("-- a comment\nSELECT 1"));
    assert_true(first_is_query("/* one */ /* two */SELECT 1"));
    assert_true(first_is_query("VALUES (1)"));
    assert_true(first_is_query("TABLE t"));
    assert_true(first_is_query("select;"));
    assert_true(first_is_query("select"));
    /* whole words only */
    assert_false(first_is_query("selection"));
    assert_false(first_is_query("select_x"));
    assert_false(first_is_query("select$1"));
    assert_false(first_is_query("tables"));
    /* other statements, and what hides the keyword */
    assert_false(first_is_query("INSERT INTO t VALUES (1)"));
    assert_false(first_is_query("-- SELECT 1"));
    assert_false(first_is_query("/* unterminated SELECT 1"));
    assert_false(first_is_query("WITH x AS (SELECT 1) SELECT * FROM x"));
    assert_false(first_is_query(""));
    assert_false(first_is_query("   "));
    assert_false(sql_first_word_in("SELECT 1", QUERIES, 0));
}

static void test_skip(void **state)
{
    (void)state;
    assert_string_equal(sql_skip("  ; -- c\n ;/* d */ x", ";"), "x");
    assert_string_equal(sql_skip(" ;x", ""), ";x"); /* only what also names */
    assert_string_equal(sql_skip("((a", "("), "a");
    assert_string_equal(sql_skip("; /* open", ";"), "/* open");
    assert_string_equal(sql_skip("-- to the end", ";"), "");
    assert_string_equal(sql_skip("", ";"), "");
}

static void test_router_reads(void **state)
{
    (void)state;
    assert_true(router_is_read("SELECT 1"));
    assert_true(router_is_read(" (values (1))"));
    assert_true(router_is_read("show search_path"));
    assert_true(router_is_read("EXPLAIN SELECT 1"));
    assert_false(router_is_read("TABLE t")); /* not on the router's list */
    assert_false(router_is_read("UPDATE t SET a = 1"));
    assert_false(router_is_read("DELETE FROM t"));
    assert_false(router_is_read("showcase"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_word),
        cmocka_unit_test(test_skip),
        cmocka_unit_test(test_router_reads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
