/* Unit tests for core/value.c: constructors, copies, the val_compare order
 * the ORDER BY merge relies on, and result sets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "citrus/errors.h"
#include "core/value.h"

static value text(const char *s)
{
    return val_text(s, strlen(s));
}

/* Asserts a < b, b > a, and each equal to itself. */
static void assert_less(value a, value b)
{
    assert_int_equal(val_compare(&a, &b), -1);
    assert_int_equal(val_compare(&b, &a), 1);
    assert_int_equal(val_compare(&a, &a), 0);
    assert_int_equal(val_compare(&b, &b), 0);
    val_free(&a);
    val_free(&b);
}

static void assert_same(value a, value b)
{
    assert_int_equal(val_compare(&a, &b), 0);
    assert_int_equal(val_compare(&b, &a), 0);
    val_free(&a);
    val_free(&b);
}

static void constructors(void **state)
{
    value v = val_int(-7);
    assert_true(val_ok(&v, VAL_INT));
    assert_int_equal(v.u.i, -7);
    v = val_real(2.5);
    assert_true(val_ok(&v, VAL_REAL));
    v = val_bool(true);
    assert_true(val_ok(&v, VAL_BOOL) && v.u.b);
    v = val_text("a\0b", 3);
    assert_true(val_ok(&v, VAL_TEXT));
    assert_int_equal(v.u.s.len, 3);
    assert_memory_equal(v.u.s.p, "a\0b", 4); /* and NUL-terminated */
    val_free(&v);
    assert_true(val_ok(&v, VAL_NULL));
    v = val_blob(NULL, 0);
    assert_true(val_ok(&v, VAL_BLOB));
    assert_int_equal(v.u.s.len, 0);
    val_free(&v);
    val_free(&v); /* freeing twice is harmless: it is NULL now */
}

static void copies(void **state)
{
    value src = val_blob("\x00\xff", 2), dst;
    assert_int_equal(val_copy(&dst, &src), 0);
    assert_int_equal(dst.type, VAL_BLOB);
    assert_ptr_not_equal(dst.u.s.p, src.u.s.p);
    assert_memory_equal(dst.u.s.p, "\x00\xff", 2);
    val_free(&src);
    val_free(&dst);
    src = val_real(-0.5);
    assert_int_equal(val_copy(&dst, &src), 0);
    assert_int_equal(dst.type, VAL_REAL);
    assert_true(dst.u.d == -0.5);
}

static void compare_null_first(void **state)
{
    assert_same(val_null(), val_null());
    assert_less(val_null(), val_int(INT64_MIN));
    assert_less(val_null(), val_real(-1e300));
    assert_less(val_null(), val_bool(false));
    assert_less(val_null(), text(""));
    assert_less(val_null(), val_blob("", 0));
}

static void compare_numbers(void **state)
{
    assert_less(val_int(-1), val_int(0));
    assert_less(val_int(INT64_MIN), val_int(INT64_MAX));
    assert_less(val_real(1.5), val_real(2.5));
    assert_less(val_int(1), val_real(1.5));
    assert_less(val_real(1.5), val_int(2));
    assert_same(val_int(2), val_real(2.0));
    assert_less(val_real(-0.5), val_int(0));
    /* exact between integers beyond 2^53 */
    assert_less(val_int(INT64_MAX - 1), val_int(INT64_MAX));
    /* BOOL is 0/1 */
    assert_less(val_bool(false), val_bool(true));
    assert_same(val_bool(true), val_int(1));
    assert_same(val_bool(false), val_real(0.0));
    assert_less(val_bool(true), val_real(1.5));
    assert_less(val_int(-1), val_bool(false));
}

static void compare_kinds(void **state)
{
    assert_less(val_int(INT64_MAX), text(""));
    assert_less(val_real(1e300), text("0"));
    assert_less(val_bool(true), val_blob("", 0));
    assert_less(text("\xff\xff"), val_blob("", 0)); /* TEXT < BLOB whatever the bytes */
}

static void compare_bytes(void **state)
{
    assert_less(text("a"), text("b"));
    assert_less(text(""), text("a"));
    assert_less(text("ab"), text("abc")); /* a prefix first */
    assert_less(text("abc"), text("abd"));
    assert_less(text("B"), text("a")); /* bytewise, not collated */
    assert_less(text("z"), text("\xc3\xa9"));
    assert_same(text("same"), text("same"));
    assert_less(val_text("a\0a", 3), val_text("a\0b", 3)); /* past an inner NUL */
    assert_less(val_blob("\x01", 1), val_blob("\x01\x00", 2));
    assert_less(val_blob("\x00\x01", 2), val_blob("\x01", 1));
    assert_less(val_blob("\x7f", 1), val_blob("\x80", 1)); /* unsigned bytes */
}

/* Beyond 2^53 a double cannot tell neighbouring integers apart: the
 * comparison must still order them consistently; NaN sorts above all
 * numbers and equals itself. */
static void compare_exact_and_nan(void **state)
{
    (void)state;
    int64_t big = ((int64_t)1 << 53) + 1;
    assert_less(val_real(9007199254740992.0), val_int(big));
    assert_less(val_int(big - 1), val_int(big));
    assert_same(val_int((int64_t)1 << 53), val_real(9007199254740992.0));
    assert_less(val_int(INT64_MAX), val_real(1e19));
    assert_less(val_real(-1e19), val_int(INT64_MIN));
    assert_less(val_real(1e300), val_real(NAN));
    assert_less(val_int(INT64_MAX), val_real(NAN));
    assert_same(val_real(NAN), val_real(NAN));
}

static value num(const char *s)
{
    return val_numeric(s, strlen(s));
}

static void compare_numeric(void **state)
{
    /* exact decimals against each other, INT, BOOL and REAL, by value */
    assert_same(num("2.50"), num("2.5"));
    assert_same(num("-0.0"), val_int(0));
    assert_same(num("1"), val_bool(true));
    assert_less(num("9223372036854775807"), num("9223372036854775807.000001"));
    assert_less(val_int(INT64_MAX), num("9223372036854775808"));
    assert_less(num("-9223372036854775809"), val_int(INT64_MIN));
    assert_less(num("0.1"), val_real(0.25));
    assert_less(num("-1e3"), val_int(-999));
    assert_less(num("1"), val_real(NAN));                          /* NaN above every number */
    assert_less(num("123456789012345678901234567890"), text("1")); /* numbers < TEXT */
    /* not decimals: no NUMERIC */
    const char *bad[] = {"", "NaN", "Infinity", "-", "1.2.3", "0x10", "1e", " 1", "1e1001"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(num(bad[i]).type, VAL_NULL);
    value v = num("12.50"), c;
    assert_int_equal(val_copy(&c, &v), 0);
    assert_int_equal(c.type, VAL_NUMERIC);
    assert_string_equal(c.u.s.p, "12.50");
    val_free(&v);
    val_free(&c);
}

static void result_set_rows(void **state)
{
    result_set rs;
    rs_init(&rs);
    const char *names[] = {"id", "name"};
    assert_int_equal(rs_set_columns(&rs, names, 2), 0);
    assert_int_equal(rs.ncols, 2);
    assert_ptr_not_equal(rs.columns[0], names[0]); /* copied */
    assert_int_equal(rs_column(&rs, "name"), 1);
    assert_int_equal(rs_column(&rs, "id"), 0);
    assert_int_equal(rs_column(&rs, "nope"), -1);
    assert_int_equal(rs_column(&rs, "Name"), -1); /* exact */
    for (int i = 0; i < 40; i++) {                /* past the first growth */
        value row[2] = {val_int(i), text("x")};
        assert_int_equal(rs_append_row(&rs, row), 0);
        assert_int_equal(row[0].type, VAL_NULL); /* taken */
        assert_int_equal(row[1].type, VAL_NULL);
    }
    assert_int_equal(rs.nrows, 40);
    assert_int_equal(rs_cell(&rs, 39, 0)->u.i, 39);
    assert_string_equal(rs_cell(&rs, 17, 1)->u.s.p, "x");
    rs_free(&rs);
    assert_int_equal(rs.nrows, 0);
    assert_null(rs.columns);
    rs_free(&rs); /* twice is harmless */
}

static void result_set_no_columns(void **state)
{
    result_set rs;
    rs_init(&rs);
    assert_int_equal(rs_column(&rs, "a"), -1);
    assert_int_equal(rs_set_columns(&rs, NULL, 0), 0);
    assert_int_equal(rs_append_row(&rs, NULL), 0); /* SELECT FROM t: rows with no columns */
    assert_int_equal(rs.nrows, 1);
    rs_free(&rs);
}

static void result_set_replace_columns(void **state)
{
    result_set rs;
    rs_init(&rs);
    const char *a[] = {"a"}, *b[] = {"b"};
    assert_int_equal(rs_set_columns(&rs, a, 1), 0);
    assert_int_equal(rs_set_columns(&rs, b, 1), 0); /* the old names are freed */
    assert_string_equal(rs.columns[0], "b");
    rs_free(&rs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(constructors),          cmocka_unit_test(copies),
        cmocka_unit_test(compare_null_first),    cmocka_unit_test(compare_numbers),
        cmocka_unit_test(compare_kinds),         cmocka_unit_test(compare_bytes),
        cmocka_unit_test(compare_exact_and_nan), cmocka_unit_test(result_set_rows),
        cmocka_unit_test(result_set_no_columns), cmocka_unit_test(result_set_replace_columns),
        cmocka_unit_test(compare_numeric),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
