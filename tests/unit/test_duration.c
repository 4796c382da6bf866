/* tests/unit/test_duration.c — core/duration.c: "30s", "500ms", "2m", bare
 * seconds; everything else refused, nothing overflows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/duration.h"

static int64_t parsed(const char *s)
{
    int64_t ms = -7;
    assert_int_equal(duration_parse_ms(s, &ms), 0);
    return ms;
}

static void test_units(void **state)
{
    (void)state;
    assert_int_equal(parsed("30s"), 30000);
    assert_int_equal(parsed("30"), 30000);
    assert_int_equal(parsed("1.5"), 1500);
    assert_int_equal(parsed("500ms"), 500);
    assert_int_equal(parsed("2m"), 120000);
    assert_int_equal(parsed("0"), 0);
    assert_int_equal(parsed("0.25s"), 250);
}

static void test_refused(void **state)
{
    (void)state;
    const char *bad[] = {"",   "s",   "-1",  "-1s",       "10x",  "10 s", "10sec",
                         "1h", "nan", "inf", "infinitys", "10s ", "ms"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms = -7;
        assert_int_equal(duration_parse_ms(bad[i], &ms), -1);
        assert_int_equal(ms, -7); /* untouched */
    }
}

static void test_saturates(void **state)
{
    (void)state;
    assert_int_equal(parsed("1e300"), DURATION_MAX_MS);
    assert_int_equal(parsed("99999999999m"), DURATION_MAX_MS);
    assert_int_equal(parsed("2592000s"), DURATION_MAX_MS); /* exactly 30 days */
    assert_int_equal(parsed("2591999s"), DURATION_MAX_MS - 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_units),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_saturates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
