/* Unit tests for core/key.c: key and prefix rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "citrus/errors.h"
#include "core/key.h"

static int check(const char *k)
{
    const char *why = NULL;
    return key_validate(k, strlen(k), &why);
}

static int check_prefix(const char *k)
{
    const char *why = NULL;
    return key_validate_prefix(k, strlen(k), &why);
}

static void valid_keys(void **state)
{
    assert_int_equal(check("a"), 0);
    assert_int_equal(check("app/db/url"), 0);
    assert_int_equal(check("tenants/caf\xc3\xa9/\xe2\x82\xac"), 0);
    assert_int_equal(check("a.b/..c/d..e/x-y_z:1"), 0);
    char big[KEY_MAX_BYTES + 1];
    memset(big, 'k', KEY_MAX_BYTES);
    big[KEY_MAX_BYTES] = '\0';
    assert_int_equal(check(big), 0);
}

static void invalid_keys(void **state)
{
    const char *bad[] = {"",
                         "/a",
                         "a/",
                         "a//b",
                         ".",
                         "..",
                         "a/./b",
                         "a/../b",
                         "a\tb",
                         "a\x7f",
                         "\xff",
                         "\xc3",
                         "\xc0\x80", /* overlong NUL, as the HTTP layer decodes %00 */
                         "a\xc2\x85"
                         "b", /* C1 control U+0085 */
                         "\xed\xa0\x80" /* surrogate */,
                         "\xf4\x90\x80\x80" /* > U+10FFFF */};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = NULL;
        assert_int_equal(key_validate(bad[i], strlen(bad[i]), &why), CITRUS_EBADKEY);
        assert_non_null(why);
    }
    char big[KEY_MAX_BYTES + 2];
    memset(big, 'k', KEY_MAX_BYTES + 1);
    big[KEY_MAX_BYTES + 1] = '\0';
    assert_int_equal(check(big), CITRUS_EBADKEY);
}

static void nul_inside_length(void **state)
{
    const char *why = NULL;
    assert_int_equal(key_validate("a\0b", 3, &why), CITRUS_EBADKEY);
    assert_string_equal(why, "key contains NUL");
}

static void prefixes(void **state)
{
    assert_int_equal(check_prefix(""), 0);
    assert_int_equal(check_prefix("app/"), 0);
    assert_int_equal(check_prefix("app/d"), 0);
    assert_int_equal(check_prefix("/"), CITRUS_EBADKEY);
    assert_int_equal(check_prefix("app//"), CITRUS_EBADKEY);
    assert_int_equal(check_prefix("a/../"), CITRUS_EBADKEY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_keys),
        cmocka_unit_test(invalid_keys),
        cmocka_unit_test(nul_inside_length),
        cmocka_unit_test(prefixes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
