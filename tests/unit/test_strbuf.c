/* tests/unit/test_strbuf.c — core/strbuf.c (the growable buffer) and
 * core/errdetail.c (an error with its detail). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "citrus/errors.h"
#include "core/strbuf.h"
#include "core/errdetail.h"

static void test_buf_grows(void **state)
{
    (void)state;
    strbuf b = STRBUF_INIT;
    assert_string_equal(strbuf_cstr(&b), "");
    for (int i = 0; i < 1000; i++)
        assert_int_equal(strbuf_printf(&b, "%d,", i % 10), 0);
    assert_int_equal(b.len, 2000);
    assert_int_equal(strlen(strbuf_cstr(&b)), 2000);
    assert_memory_equal(strbuf_cstr(&b), "0,1,2,", 6);
    assert_int_equal(strbuf_add(&b, "\0x", 2), 0); /* bytes, NULs included */
    assert_int_equal(b.len, 2002);
    assert_int_equal(b.data[2001], 'x');
    assert_int_equal(b.data[2002], '\0');
    strbuf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(strbuf_cstr(&b), "");
    assert_int_equal(strbuf_str(&b, "abc"), 0);
    size_t len = 0;
    char *s = strbuf_take(&b, &len);
    assert_string_equal(s, "abc");
    assert_int_equal(len, 3);
    assert_null(b.data); /* taken: b is empty again */
    free(s);
    s = strbuf_take(&b, &len); /* nothing added: "" */
    assert_string_equal(s, "");
    assert_int_equal(len, 0);
    free(s);
    strbuf_free(&b);
}

static void test_buf_bound(void **state)
{
    (void)state;
    strbuf b;
    strbuf_init_max(&b, 10);
    assert_int_equal(strbuf_str(&b, "0123456789"), 0);
    assert_int_equal(strbuf_str(&b, "x"), CITRUS_ETOOBIG);
    assert_int_equal(strbuf_printf(&b, "%s", ""), CITRUS_ETOOBIG); /* sticky */
    assert_int_equal(b.len, 10);
    assert_null(strbuf_take(&b, NULL)); /* after an error: NULL, freed */
    assert_int_equal(b.max, 10);
    assert_int_equal(strbuf_str(&b, "again"), 0); /* the bound stays, the error went */
    strbuf_reset(&b);
    assert_int_equal(strbuf_printf(&b, "%05d%05d", 1, 2), 0); /* exactly the bound */
    assert_int_equal(strbuf_printf(&b, "%d", 3), CITRUS_ETOOBIG);
    strbuf_free(&b);
}

/* strbuf_consume drops a prefix and keeps the rest NUL-terminated; asking
 * for more than there is empties the buffer. */
static void test_buf_consume(void **state)
{
    (void)state;
    strbuf b = STRBUF_INIT;
    strbuf_consume(&b, 3); /* nothing yet: no-op */
    assert_int_equal(b.len, 0);
    assert_int_equal(strbuf_str(&b, "line one\nline two"), 0);
    strbuf_consume(&b, 9);
    assert_string_equal(strbuf_cstr(&b), "line two");
    assert_int_equal(b.len, 8);
    strbuf_consume(&b, 100);
    assert_string_equal(strbuf_cstr(&b), "");
    assert_int_equal(b.len, 0);
    assert_int_equal(strbuf_str(&b, "again"), 0);
    assert_string_equal(strbuf_cstr(&b), "again");
    strbuf_free(&b);
}

static void test_errdetail(void **state)
{
    (void)state;
    errdetail e;
    errdetail_clear(&e);
    assert_int_equal(e.code, 0);
    assert_string_equal(e.message, "");
    assert_int_equal(errdetail_set(&e, CITRUS_EIO, "read %s: %d", "f", 5), CITRUS_EIO);
    assert_int_equal(e.code, CITRUS_EIO);
    assert_string_equal(e.message, "read f: 5");
    errdetail_sqlstate(&e, "57014");
    assert_string_equal(e.sqlstate, "57014");
    errdetail_sqlstate(&e, "5701"); /* not a SQLSTATE: cleared */
    assert_string_equal(e.sqlstate, "");
    errdetail_prefix(&e, "shard %s", "s1");
    assert_string_equal(e.message, "shard s1: read f: 5");
    assert_int_equal(errdetail_set(NULL, CITRUS_EINVAL, "x"), CITRUS_EINVAL); /* NULL: no detail */
    char big[2000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    errdetail_set(&e, CITRUS_EINVAL, "%s", big); /* truncated, terminated */
    assert_int_equal(strlen(e.message), ERRDETAIL_MESSAGE_MAX - 1);
    errdetail_prefix(&e, "ctx");
    assert_int_equal(strlen(e.message), ERRDETAIL_MESSAGE_MAX - 1);
    assert_memory_equal(e.message, "ctx: aaa", 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_grows),
        cmocka_unit_test(test_buf_bound),
        cmocka_unit_test(test_buf_consume),
        cmocka_unit_test(test_errdetail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
