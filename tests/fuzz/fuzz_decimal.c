/* tests/fuzz/fuzz_decimal.c — core/decimal.c: parsing, text, add, compare,
 * multiply and the rounded division of scatter avg.
 *
 * The input is "<a>|<b>|<k>" (bytes; missing parts are empty, k one byte
 * used as a divisor 1..255 with a sign from its top bit). Checks: dec_valid
 * agrees with dec_parse; the text of a decimal parses back to the same text;
 * addition commutes, a + b - b is a, and a + b orders against a as b against
 * 0; a * k / k is a at a's scale when the division keeps it; the quotient q of
 * a / k is within half a unit of its last place (|q * k - a| <= |k| / 2 ulp);
 * and against __int128 arithmetic when both are small integers. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "citrus/errors.h"
#include "core/decimal.h"

static int sign(const decimal *x)
{
    return x->n == 0 ? 0 : x->neg ? -1 : 1;
}

static char *text(const decimal *x)
{
    char *t = dec_text(x, NULL);
    FUZZ_CHECK(t != NULL, "dec_text: out of memory");
    return t;
}

/* Parses s[0..n); checks the verdict against dec_valid and the round trip. */
static bool parse(const char *s, size_t n, decimal *out)
{
    int rc = dec_parse(s, n, out);
    FUZZ_CHECK(rc == 0 || rc == CITRUS_EINVAL, "dec_parse returned %d", rc);
    FUZZ_CHECK((rc == 0) == dec_valid(s, n), "dec_parse %d but dec_valid %d", rc,
               (int)dec_valid(s, n));
    if (rc)
        return false;
    char *t = text(out);
    decimal again;
    FUZZ_CHECK(dec_parse(t, strlen(t), &again) == 0, "own text \"%s\" refused", t);
    char *t2 = text(&again);
    FUZZ_CHECK(strcmp(t, t2) == 0, "text \"%s\" reparsed as \"%s\"", t, t2);
    FUZZ_CHECK(dec_cmp(out, &again) == 0 && again.scale == out->scale, "round trip of %s", t);
    free(t);
    free(t2);
    dec_free(&again);
    return true;
}

/* A small integer decimal (scale 0, at most 30 digits) as __int128. */
static bool small_int(const decimal *x, __int128 *v)
{
    if (x->scale || x->n > 30)
        return false;
    __int128 m = 0;
    for (size_t i = 0; i < x->n; i++)
        m = m * 10 + (x->d[i] - '0');
    *v = x->neg ? -m : m;
    return true;
}

static void check_add(const decimal *a, const decimal *b)
{
    decimal s1, s2, nb, back;
    FUZZ_CHECK(dec_add(a, b, &s1) == 0 && dec_add(b, a, &s2) == 0, "dec_add failed");
    FUZZ_CHECK(dec_cmp(&s1, &s2) == 0, "a + b != b + a");
    FUZZ_CHECK(dec_cmp(&s1, a) == sign(b), "a + b against a: %d, b's sign %d", dec_cmp(&s1, a),
               sign(b));
    FUZZ_CHECK(dec_mul_int(b, -1, &nb) == 0, "dec_mul_int failed");
    FUZZ_CHECK(dec_add(&s1, &nb, &back) == 0 && dec_cmp(&back, a) == 0, "a + b - b != a");
    __int128 x, y, z;
    if (small_int(a, &x) && small_int(b, &y) && small_int(&s1, &z))
        FUZZ_CHECK(z == x + y, "small integer sum wrong");
    if (small_int(a, &x) && small_int(b, &y))
        FUZZ_CHECK(dec_cmp(a, b) == (x < y ? -1 : x > y), "small integer compare wrong");
    dec_free(&s1);
    dec_free(&s2);
    dec_free(&nb);
    dec_free(&back);
}

static void check_div(const decimal *a, int64_t k)
{
    decimal q, qk, na, diff;
    FUZZ_CHECK(dec_div_int(a, k, &q) == 0, "dec_div_int failed");
    FUZZ_CHECK(q.scale >= a->scale || q.scale == DEC_MAX_SCALE, "quotient scale %zu < %zu", q.scale,
               a->scale);
    FUZZ_CHECK(dec_mul_int(&q, k, &qk) == 0 && dec_mul_int(a, -1, &na) == 0, "mul failed");
    FUZZ_CHECK(dec_add(&qk, &na, &diff) == 0, "add failed");
    /* |q*k - a| * 2 <= |k| * 10^-scale(q), i.e. |diff| * 2 as an integer at
     * q's scale (diff's scale is q's) is at most |k| */
    decimal two, kk;
    FUZZ_CHECK(dec_mul_int(&diff, diff.neg ? -2 : 2, &two) == 0, "mul failed");
    char *t = text(&two);
    FUZZ_CHECK(dec_from_int(k < 0 ? -k : k, &kk) == 0, "from_int failed");
    two.scale = 0; /* units of the last place */
    FUZZ_CHECK(dec_cmp(&two, &kk) <= 0, "quotient off by more than half a unit: 2|diff| = %s", t);
    free(t);
    dec_free(&q);
    dec_free(&qk);
    dec_free(&na);
    dec_free(&diff);
    dec_free(&two);
    dec_free(&kk);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 300)
        return 0;
    const char *s = (const char *)data, *end = s + size;
    const char *bar1 = memchr(s, '|', size);
    const char *bs = bar1 ? bar1 + 1 : end;
    const char *bar2 = bar1 ? memchr(bs, '|', (size_t)(end - bs)) : NULL;
    const char *be = bar2 ? bar2 : end;
    int64_t k = bar2 && bar2 + 1 < end ? (int8_t)bar2[1] : 3;
    if (k == 0)
        k = 7;
    decimal a, b;
    bool ok_a = parse(s, (size_t)((bar1 ? bar1 : end) - s), &a);
    bool ok_b = parse(bs, (size_t)(be - bs), &b);
    if (ok_a && ok_b)
        check_add(&a, &b);
    if (ok_a && a.n + a.scale < 200)
        check_div(&a, k);
    if (ok_a)
        dec_free(&a);
    if (ok_b)
        dec_free(&b);
    return 0;
}
