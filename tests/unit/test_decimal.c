/* Unit tests for core/decimal.c: parsing, text, addition, comparison,
 * multiplication and the rounded division avg uses, against exact
 * expectations (and a randomized check of add against 128-bit integers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "citrus/errors.h"
#include "core/decimal.h"

static decimal dec(const char *s)
{
    decimal d;
    assert_int_equal(dec_parse(s, strlen(s), &d), 0);
    return d;
}

/* The text of x (freed), compared to want. */
static void assert_text(decimal *x, const char *want)
{
    size_t len;
    char *t = dec_text(x, &len);
    assert_non_null(t);
    assert_int_equal(len, strlen(t));
    if (strcmp(t, want) != 0)
        fail_msg("got %s, want %s", t, want);
    free(t);
    dec_free(x);
}

static void parse_and_text(void **state)
{
    static const char *cases[][2] = {
        {"0", "0"},
        {"-0", "0"},
        {"007", "7"},
        {"12.50", "12.50"},
        {"-0.05", "-0.05"},
        {".5", "0.5"},
        {"5.", "5"},
        {"+3", "3"},
        {"1e3", "1000"},
        {"1.5E-3", "0.0015"},
        {"-2.5e1", "-25"},
        {"0.000", "0.000"},
        {"123456789012345678901234567890.123456789", "123456789012345678901234567890.123456789"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        decimal d = dec(cases[i][0]);
        assert_text(&d, cases[i][1]);
    }
    static const char
        *bad[] = {"",       "-",       ".",         "NaN",      "Infinity", "-Infinity", "1.2.3",
                  "1e",     "1e+",     "e5",        " 1",       "1 ",       "1,5",       "0x1F",
                  "1e1001", "1e-1001", ".00e-1000", "0.55e-999"}; /* the last two: scale > 1000 */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        decimal d = {.n = 99};
        assert_int_equal(dec_parse(bad[i], strlen(bad[i]), &d), CITRUS_EINVAL);
        assert_int_equal(d.n, 0);
        assert_null(d.d);
        assert_false(dec_valid(bad[i], strlen(bad[i])));
    }
    decimal edge;
    assert_int_equal(dec_parse("0.5e-999", 8, &edge), 0); /* scale 1000: the most */
    assert_int_equal(edge.scale, DEC_MAX_SCALE);
    dec_free(&edge);
    /* length-bounded: a NUL-free prefix of a longer buffer */
    decimal d;
    assert_int_equal(dec_parse("12345", 3, &d), 0);
    assert_text(&d, "123");
    char *huge = malloc(DEC_MAX_DIGITS + 2);
    memset(huge, '9', DEC_MAX_DIGITS + 1);
    assert_int_equal(dec_parse(huge, DEC_MAX_DIGITS, &d), 0);
    dec_free(&d);
    assert_int_equal(dec_parse(huge, DEC_MAX_DIGITS + 1, &d), CITRUS_EINVAL);
    free(huge);
}

static void from_and_to_int(void **state)
{
    decimal d;
    assert_int_equal(dec_from_int(INT64_MIN, &d), 0);
    assert_text(&d, "-9223372036854775808");
    int64_t i;
    static const struct {
        const char *s;
        int ok;
        int64_t v;
    } cases[] = {{"9223372036854775807", 1, INT64_MAX},
                 {"-9223372036854775808", 1, INT64_MIN},
                 {"9223372036854775808", 0, 0},
                 {"-9223372036854775809", 0, 0},
                 {"42.000", 1, 42},
                 {"42.001", 0, 0},
                 {"0.0", 1, 0}};
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        d = dec(cases[k].s);
        int rc = dec_to_int(&d, &i);
        assert_int_equal(rc, cases[k].ok ? 0 : CITRUS_EINVAL);
        if (cases[k].ok)
            assert_true(i == cases[k].v);
        dec_free(&d);
    }
    d = dec("-12.5");
    assert_true(dec_to_double(&d) == -12.5);
    dec_free(&d);
}

static void add(void **state)
{
    static const char *cases[][3] = {
        {"0.1", "0.2", "0.3"},
        {"1.50", "2", "3.50"},
        {"9223372036854775807", "9223372036854775807", "18446744073709551614"},
        {"-9223372036854775808", "-1", "-9223372036854775809"},
        {"5", "-5", "0"},
        {"5.00", "-5", "0.00"},
        {"-0.001", "0.0001", "-0.0009"},
        {"999.99", "0.01", "1000.00"},
        {"-1000", "999.999", "-0.001"},
        {"0", "-3.5", "-3.5"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        decimal a = dec(cases[i][0]), b = dec(cases[i][1]), s;
        assert_int_equal(dec_add(&a, &b, &s), 0);
        assert_text(&s, cases[i][2]);
        assert_int_equal(dec_add(&b, &a, &s), 0); /* commutes */
        assert_text(&s, cases[i][2]);
        dec_free(&a);
        dec_free(&b);
    }
}

static void compare(void **state)
{
    static const struct {
        const char *a, *b;
        int want;
    } cases[] = {{"2.5", "2.50", 0},   {"-0", "0.00", 0},
                 {"1", "2", -1},       {"-1", "-2", 1},
                 {"0.1", "0.09", 1},   {"-0.1", "0", -1},
                 {"100", "99.999", 1}, {"1e20", "99999999999999999999.9", 1},
                 {"-5", "3", -1},      {"0.0001", "0", 1}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        decimal a = dec(cases[i].a), b = dec(cases[i].b);
        assert_int_equal(dec_cmp(&a, &b), cases[i].want);
        assert_int_equal(dec_cmp(&b, &a), -cases[i].want);
        dec_free(&a);
        dec_free(&b);
    }
}

static void multiply(void **state)
{
    decimal a = dec("0.15"), p;
    assert_int_equal(dec_mul_int(&a, 2, &p), 0);
    assert_text(&p, "0.30");
    assert_int_equal(dec_mul_int(&a, -3, &p), 0);
    assert_text(&p, "-0.45");
    assert_int_equal(dec_mul_int(&a, 0, &p), 0);
    assert_text(&p, "0.00");
    dec_free(&a);
    a = dec("-9223372036854775808");
    assert_int_equal(dec_mul_int(&a, INT64_MIN, &p), 0);
    assert_text(&p, "85070591730234615865843651857942052864");
    dec_free(&a);
}

static void divide(void **state)
{
    static const struct {
        const char *a;
        int64_t k;
        const char *want;
    } cases[] = {
        {"3", 2, "1.500000000000000"},  /* 16 significant digits */
        {"2", 3, "0.6666666666666667"}, /* rounded half away from zero */
        {"-2", 3, "-0.6666666666666667"},
        {"1", 3, "0.3333333333333333"},
        {"10", 4, "2.500000000000000"},
        {"0.5", 1, "0.5000000000000000"},
        {"1.23456789012345678901", 1, "1.23456789012345678901"}, /* the input's scale */
        {"99999999999999999999", 1, "99999999999999999999"},
        {"0.0000001", 3, "0.00000003333333333333333"},
        {"0.9999999999999999999", 1, "0.9999999999999999999"},
        {"19.99999999999999999", 2, "10.00000000000000000"},
        {"0", 7, "0"},
        {"18446744073709551616", INT64_MIN, "-2.000000000000000"},
        {"1", INT64_MAX, "0.0000000000000000001084202172485504"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        decimal a = dec(cases[i].a), q;
        assert_int_equal(dec_div_int(&a, cases[i].k, &q), 0);
        assert_text(&q, cases[i].want);
        dec_free(&a);
    }
    decimal a = dec("1"), q;
    assert_int_equal(dec_div_int(&a, 0, &q), CITRUS_EINVAL);
    dec_free(&a);
    /* rounding carries through nines: 0.99999999999999999 / 1 at 16 digits */
    a = dec("9.9999999999999999");
    assert_int_equal(dec_div_int(&a, 3, &q), 0);
    assert_text(&q, "3.3333333333333333");
    dec_free(&a);
    a = dec("2.99999999999999999999");
    assert_int_equal(dec_div_int(&a, 1, &q), 0);
    assert_text(&q, "2.99999999999999999999");
    dec_free(&a);
    a = dec("29.999999999999999");
    assert_int_equal(dec_div_int(&a, 10, &q), 0); /* 2.9999999999999999 at 15 places */
    assert_text(&q, "3.000000000000000");
    dec_free(&a);
}

/* Random sums of 64-bit integers against __int128 arithmetic. */
static void randomized_add(void **state)
{
    srand(14);
    for (int t = 0; t < 2000; t++) {
        /* unsigned shifts (a signed one past the top bit is undefined), the
         * top bit cleared so that negating cannot overflow */
        uint64_t ux = ((uint64_t)rand() << 40) ^ ((uint64_t)rand() << 20) ^ (uint64_t)rand();
        uint64_t uy = ((uint64_t)rand() << 41) ^ ((uint64_t)rand() << 9) ^ (uint64_t)rand();
        int64_t x = (int64_t)(ux & INT64_MAX);
        int64_t y = (int64_t)(uy & INT64_MAX);
        if (rand() & 1)
            x = -x;
        if (rand() & 1)
            y = -y;
        __int128 s = (__int128)x * 4 + y;
        decimal a, b, c, d;
        assert_int_equal(dec_from_int(x, &a), 0);
        assert_int_equal(dec_mul_int(&a, 4, &c), 0);
        assert_int_equal(dec_from_int(y, &b), 0);
        assert_int_equal(dec_add(&c, &b, &d), 0);
        char want[64], *p = want + sizeof(want) - 1;
        *p = '\0';
        unsigned __int128 m = s < 0 ? -(unsigned __int128)s : (unsigned __int128)s;
        do
            *--p = (char)('0' + (int)(m % 10));
        while ((m /= 10) != 0);
        if (s < 0)
            *--p = '-';
        assert_text(&d, p);
        assert_int_equal(dec_cmp(&a, &b), x < y ? -1 : x > y);
        dec_free(&a);
        dec_free(&b);
        dec_free(&c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_and_text),
        cmocka_unit_test(from_and_to_int),
        cmocka_unit_test(add),
        cmocka_unit_test(compare),
        cmocka_unit_test(multiply),
        cmocka_unit_test(divide),
        cmocka_unit_test(randomized_add),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
