/* Unit tests for wire/base64.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wire/base64.h"

static void vectors(void **state)
{
    const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        char *e = base64_encode((const unsigned char *)plain[i], strlen(plain[i]));
        assert_string_equal(e, enc[i]);
        size_t n;
        unsigned char *d = base64_decode(e, strlen(e), &n);
        assert_non_null(d);
        assert_int_equal(n, strlen(plain[i]));
        assert_memory_equal(d, plain[i], n);
        free(d);
        free(e);
    }
}

static void binary_round_trip(void **state)
{
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    char *e = base64_encode(all, sizeof(all));
    size_t n;
    unsigned char *d = base64_decode(e, strlen(e), &n);
    assert_int_equal(n, 256);
    assert_memory_equal(d, all, 256);
    free(d);
    free(e);
}

static void invalid(void **state)
{
    size_t n;
    assert_null(base64_decode("abc", 3, &n));
    assert_null(base64_decode("ab!d", 4, &n));
    assert_null(base64_decode("QQ==QQ==", 8, &n));
    assert_null(base64_decode("Q=QQ", 4, &n));
    assert_null(base64_decode("Q===", 4, &n));
    assert_null(base64_decode("AB==", 4, &n)); /* non-canonical: unused bits set */
    assert_null(base64_decode("AAB=", 4, &n));
    assert_null(base64_decode("QQ\nQ", 4, &n));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(vectors), cmocka_unit_test(binary_round_trip), cmocka_unit_test(invalid)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
