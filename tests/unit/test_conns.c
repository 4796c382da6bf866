/* Unit tests for lib/conns.c: error answers become citrus_error (code,
 * HTTP status, SQLSTATE, failing statement), and answers that are not
 * Citrus errors still say what came. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "lib/conns.h"

static client_response answer(long status, const char *body)
{
    return (client_response){.status = status, .body = (char *)body, .body_len = strlen(body)};
}

static void sql_error_with_sqlstate(void **state)
{
    client_response r = answer(400, "{\"error\":{\"code\":\"sql_error\",\"message\":\"syntax "
                                    "error at or near \\\"SELEC\\\"\",\"sqlstate\":\"42601\","
                                    "\"statement\":2}}");
    citrus_error e;
    assert_int_equal(conns_answer_error(&r, &e), CITRUS_ESQL);
    assert_int_equal(e.code, CITRUS_ESQL);
    assert_int_equal(e.http_status, 400);
    assert_string_equal(e.name, "sql_error");
    assert_string_equal(e.sqlstate, "42601");
    assert_int_equal(e.statement, 2);
    assert_string_equal(e.message, "syntax error at or near \"SELEC\"");
    assert_null(conns_answer_json(&r, &e));
    assert_int_equal(e.code, CITRUS_ESQL);
}

static void other_answers(void **state)
{
    citrus_error e;
    client_response r = answer(503, "{\"error\":{\"code\":\"read_only\",\"message\":\"ro\"}}");
    assert_int_equal(conns_answer_error(&r, &e), CITRUS_EREADONLY);
    assert_string_equal(e.sqlstate, "");
    assert_int_equal(e.statement, -1);
    r = answer(418, "{\"error\":{\"code\":\"from_the_future\",\"message\":\"m\"}}");
    assert_int_equal(conns_answer_error(&r, &e), CITRUS_EINTERNAL);
    assert_string_equal(e.name, "from_the_future"); /* the server's code is kept */
    r = answer(502, "<html>bad gateway</html>");
    assert_int_equal(conns_answer_error(&r, &e), CITRUS_EINTERNAL);
    assert_string_equal(e.message, "http_502: <html>bad gateway</html>");
    assert_int_equal(conns_answer_error(&r, NULL), CITRUS_EINTERNAL);
    r = answer(200, "[1]");
    assert_null(conns_answer_json(&r, &e));
    assert_int_equal(e.code, CITRUS_ECORRUPT);
    assert_true(conns_should_fail_over(CITRUS_EUNAVAILABLE, &r));
    r = answer(503, "");
    assert_true(conns_should_fail_over(0, &r));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sql_error_with_sqlstate),
        cmocka_unit_test(other_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
