/* Unit tests for core/error.c: the table's lookups agree and codes are unique. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "citrus/errors.h"

static const int all[] = {
#define X(name, val, code, http, desc) val,
    CITRUS_ERROR_TABLE(X)
#undef X
};
#define N (sizeof(all) / sizeof(all[0]))

static void lookups(void **state)
{
    assert_string_equal(citrus_err_code(CITRUS_ECONFLICT), "compare_failed");
    assert_int_equal(citrus_err_http_status(CITRUS_ECONFLICT), 409);
    assert_int_equal(citrus_err_http_status(CITRUS_ECOMPACTED), 410);
    assert_int_equal(citrus_err_http_status(CITRUS_ETOOBIG), 413);
    assert_int_equal(citrus_err_http_status(CITRUS_EMEDIATYPE), 415);
    assert_int_equal(citrus_err_http_status(CITRUS_ETIMEOUT), 504);
    assert_string_equal(citrus_err_code(CITRUS_EAUDIT), "audit_unavailable");
    assert_int_equal(citrus_err_http_status(CITRUS_EAUDIT), 503);
    assert_string_equal(citrus_err_code(CITRUS_EUNAUTHENTICATED), "unauthenticated");
    assert_int_equal(citrus_err_http_status(CITRUS_EUNAUTHENTICATED), 401);
    assert_string_equal(citrus_err_code(CITRUS_EFORBIDDEN), "forbidden");
    assert_int_equal(citrus_err_http_status(CITRUS_EFORBIDDEN), 403);
    assert_int_equal(citrus_err_http_status(CITRUS_ESTMTDENIED), 403);
    assert_int_equal(citrus_err_http_status(CITRUS_ETXCONTROL), 400);
    assert_string_equal(citrus_err_code(CITRUS_ETXCONTROL), "statement_not_allowed");
    assert_int_equal(citrus_err_http_status(CITRUS_ENOSPACE), 507);
    assert_string_equal(citrus_strerror(12345), "unknown error");
    assert_int_equal(citrus_err_http_status(12345), 500);
}

static void codes_unique(void **state)
{
    for (size_t i = 0; i < N; i++) {
        assert_true(all[i] <= 0);
        for (size_t j = i + 1; j < N; j++) {
            assert_int_not_equal(all[i], all[j]);
            /* One code, two statuses, as the sandbox issue asks: a statement
             * the sandbox denies (403) and one that changes transaction
             * state (400) are both statement_not_allowed. */
            if (all[i] == CITRUS_ESTMTDENIED && all[j] == CITRUS_ETXCONTROL)
                continue;
            assert_string_not_equal(citrus_err_code(all[i]), citrus_err_code(all[j]));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(lookups), cmocka_unit_test(codes_unique)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
