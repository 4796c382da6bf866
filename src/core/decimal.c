/* core/decimal.c — exact decimal numbers (see decimal.h).
 *
 * Arithmetic works on little-endian arrays of digit values (0..9) aligned to
 * a common scale; results go back to the ASCII, most-significant-first form
 * with leading zeros stripped. Sizes are bounded by DEC_MAX_DIGITS and
 * DEC_MAX_SCALE, so nothing here grows without limit. */
#include "core/decimal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"

void dec_free(decimal *x)
{
    free(x->d);
    *x = (decimal){0};
}

/* ---- text ---- */

typedef struct dec_syntax {
    bool neg;
    const char *ip, *fp; /* integer and fraction digits */
    size_t il, fl;
    long exp;
} dec_syntax;

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool scan(const char *s, size_t len, dec_syntax *x)
{
    size_t i = 0;
    *x = (dec_syntax){0};
    if (i < len && (s[i] == '+' || s[i] == '-'))
        x->neg = s[i++] == '-';
    x->ip = s + i;
    while (i < len && is_digit(s[i]))
        i++, x->il++;
    if (i < len && s[i] == '.') {
        x->fp = s + ++i;
        while (i < len && is_digit(s[i]))
            i++, x->fl++;
    }
    if (x->il + x->fl == 0 || x->il + x->fl > DEC_MAX_DIGITS)
        return false;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        bool eneg = false;
        size_t nd = 0;
        if (++i < len && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        while (i < len && is_digit(s[i]) && x->exp <= DEC_MAX_SCALE)
            x->exp = x->exp * 10 + (s[i++] - '0'), nd++;
        if (nd == 0 || x->exp > DEC_MAX_SCALE)
            return false;
        if (eneg)
            x->exp = -x->exp;
    }
    return i == len && (long)x->fl - x->exp <= DEC_MAX_SCALE;
}

bool dec_valid(const char *s, size_t len)
{
    dec_syntax x;
    return s && scan(s, len, &x);
}

/* Strips leading zeros (a zero has no digits and no sign). */
static void normalize(decimal *x)
{
    size_t z = 0;
    while (z < x->n && x->d[z] == '0')
        z++;
    if (z) {
        memmove(x->d, x->d + z, x->n - z);
        x->n -= z;
    }
    if (x->n == 0)
        x->neg = false;
}

int dec_parse(const char *s, size_t len, decimal *out)
{
    *out = (decimal){0};
    dec_syntax x;
    if (!s || !scan(s, len, &x))
        return CITRUS_EINVAL;
    long scale = (long)x.fl - x.exp;
    size_t pad = scale < 0 ? (size_t)-scale : 0; /* scan bounded the scale */
    size_t n = x.il + x.fl + pad;
    char *d = malloc(n + 1);
    if (!d)
        return CITRUS_ENOMEM;
    memcpy(d, x.ip, x.il);
    if (x.fl)
        memcpy(d + x.il, x.fp, x.fl);
    memset(d + x.il + x.fl, '0', pad);
    out->neg = x.neg;
    out->d = d;
    out->n = n;
    out->scale = scale < 0 ? 0 : (size_t)scale;
    normalize(out);
    return 0;
}

int dec_from_int(int64_t i, decimal *out)
{
    char buf[32];
    int k = snprintf(buf, sizeof(buf), "%" PRId64, i);
    return dec_parse(buf, (size_t)k, out);
}

char *dec_text(const decimal *x, size_t *len)
{
    size_t ip = x->n > x->scale ? x->n - x->scale : 0; /* integer digits */
    size_t total = (x->neg ? 1 : 0) + (ip ? ip : 1) + (x->scale ? 1 + x->scale : 0);
    char *t = malloc(total + 1), *p = t;
    if (!t)
        return NULL;
    if (x->neg)
        *p++ = '-';
    if (ip) {
        memcpy(p, x->d, ip);
        p += ip;
    } else {
        *p++ = '0';
    }
    if (x->scale) {
        *p++ = '.';
        size_t lead = x->scale > x->n ? x->scale - x->n : 0; /* zeros after the point */
        memset(p, '0', lead);
        p += lead;
        memcpy(p, x->d + ip, x->n - ip);
        p += x->n - ip;
    }
    *p = '\0';
    if (len)
        *len = (size_t)(p - t);
    return t;
}

double dec_to_double(const decimal *x)
{
    char *t = dec_text(x, NULL);
    double v = t ? strtod(t, NULL) : 0;
    free(t);
    return v;
}

int dec_to_int(const decimal *x, int64_t *out)
{
    size_t ip = x->n > x->scale ? x->n - x->scale : 0;
    for (size_t i = ip; i < x->n; i++)
        if (x->d[i] != '0')
            return CITRUS_EINVAL;
    uint64_t m = 0, lim = x->neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (size_t i = 0; i < ip; i++) {
        unsigned dg = (unsigned)(x->d[i] - '0');
        if (m > (lim - dg) / 10)
            return CITRUS_EINVAL;
        m = m * 10 + dg;
    }
    *out = x->neg ? (int64_t)(0 - m) : (int64_t)m;
    return 0;
}

/* ---- comparison ---- */

/* The digit of |x| at power of ten p. */
static int digit_at(const decimal *x, long p)
{
    long i = (long)x->n - 1 - (p + (long)x->scale); /* index in d */
    return i >= 0 && i < (long)x->n ? x->d[i] - '0' : 0;
}

static int cmp_mag(const decimal *a, const decimal *b)
{
    long ta = (long)a->n - (long)a->scale, tb = (long)b->n - (long)b->scale;
    long top = (ta > tb ? ta : tb) - 1;
    long low = -(long)(a->scale > b->scale ? a->scale : b->scale);
    for (long p = top; p >= low; p--) {
        int x = digit_at(a, p), y = digit_at(b, p);
        if (x != y)
            return x < y ? -1 : 1;
    }
    return 0;
}

int dec_cmp(const decimal *a, const decimal *b)
{
    bool za = a->n == 0, zb = b->n == 0;
    int sa = za ? 0 : a->neg ? -1 : 1, sb = zb ? 0 : b->neg ? -1 : 1;
    if (sa != sb)
        return sa < sb ? -1 : 1;
    if (sa == 0)
        return 0;
    int m = cmp_mag(a, b);
    return sa < 0 ? -m : m;
}

/* ---- arithmetic on little-endian digit values ---- */

/* |x| scaled to `scale` (>= x->scale) as n digit values, least significant
 * first, in a zeroed array of cap >= n entries. */
static unsigned char *to_le(const decimal *x, size_t scale, size_t cap)
{
    unsigned char *v = calloc(cap ? cap : 1, 1);
    if (!v)
        return NULL;
    size_t shift = scale - x->scale;
    for (size_t i = 0; i < x->n; i++)
        v[shift + i] = (unsigned char)(x->d[x->n - 1 - i] - '0');
    return v;
}

/* Makes out from n little-endian digit values (freed). */
static int from_le(unsigned char *v, size_t n, bool neg, size_t scale, decimal *out)
{
    char *d = malloc(n + 1);
    if (!d) {
        free(v);
        return CITRUS_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        d[i] = (char)('0' + v[n - 1 - i]);
    free(v);
    out->neg = neg;
    out->d = d;
    out->n = n;
    out->scale = scale;
    normalize(out);
    return 0;
}

int dec_add(const decimal *a, const decimal *b, decimal *out)
{
    *out = (decimal){0};
    size_t s = a->scale > b->scale ? a->scale : b->scale;
    size_t la = a->n + (s - a->scale), lb = b->n + (s - b->scale);
    size_t n = (la > lb ? la : lb) + 1;
    int m = cmp_mag(a, b);
    const decimal *big = m >= 0 ? a : b, *small = m >= 0 ? b : a;
    unsigned char *x = to_le(big, s, n), *y = to_le(small, s, n);
    if (!x || !y) {
        free(x);
        free(y);
        return CITRUS_ENOMEM;
    }
    bool same = a->neg == b->neg || a->n == 0 || b->n == 0;
    int carry = 0;
    for (size_t i = 0; i < n; i++) {
        int t = same ? x[i] + y[i] + carry : x[i] - y[i] - carry;
        carry = same ? t >= 10 : t < 0;
        x[i] = (unsigned char)(same ? t % 10 : (t + 10) % 10);
    }
    free(y);
    bool neg = big->n ? big->neg : small->neg;
    return from_le(x, n, neg, s, out);
}

int dec_mul_int(const decimal *a, int64_t k, decimal *out)
{
    *out = (decimal){0};
    uint64_t mk = k < 0 ? 0 - (uint64_t)k : (uint64_t)k;
    size_t n = a->n + 21;
    unsigned char *x = to_le(a, a->scale, n);
    if (!x)
        return CITRUS_ENOMEM;
    unsigned __int128 carry = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned __int128 t = (unsigned __int128)x[i] * mk + carry;
        x[i] = (unsigned char)(t % 10);
        carry = t / 10;
    }
    return from_le(x, n, a->neg != (k < 0), a->scale, out);
}

/* The decimal exponent of the leading digit of a non-zero x. */
static long lead_exp(const decimal *x)
{
    return (long)x->n - 1 - (long)x->scale;
}

int dec_div_int(const decimal *a, int64_t k, decimal *out)
{
    *out = (decimal){0};
    if (k == 0)
        return CITRUS_EINVAL;
    uint64_t mk = k < 0 ? 0 - (uint64_t)k : (uint64_t)k;
    long ek = snprintf(NULL, 0, "%" PRIu64, mk) - 1;
    /* The quotient's leading digit is at e or e - 1: work one digit past the
     * widest scale the rule can ask for, then round. */
    long e = a->n ? lead_exp(a) - ek : 0;
    long want = DEC_AVG_DIGITS - 1 - (e - 1);
    size_t w = want > 0 ? (size_t)want : 0;
    size_t s = a->scale > w ? a->scale : w;
    if (s > DEC_MAX_SCALE)
        s = DEC_MAX_SCALE;
    s++; /* the rounding digit */
    size_t n = a->n + (s - a->scale);
    char *q = malloc(n + 1);
    if (!q)
        return CITRUS_ENOMEM;
    unsigned __int128 rem = 0;
    for (size_t i = 0; i < n; i++) {
        rem = rem * 10 + (unsigned)(i < a->n ? a->d[i] - '0' : 0);
        q[i] = (char)('0' + (int)(rem / mk));
        rem %= mk;
    }
    decimal r = {a->neg != (k < 0), q, n, s};
    normalize(&r);
    /* The scale the rule gives for the quotient's real leading digit. */
    long sc = r.n ? DEC_AVG_DIGITS - 1 - lead_exp(&r) : 0;
    size_t target = sc > 0 && (size_t)sc > a->scale ? (size_t)sc : a->scale;
    if (target > s - 1)
        target = s - 1;
    size_t drop = s - target; /* >= 1 */
    bool up = false;
    if (drop <= r.n) {
        up = r.d[r.n - drop] >= '5';
        r.n -= drop;
    } else {
        r.n = 0;
    }
    r.scale = target;
    if (up) { /* add one unit in the last place */
        size_t i = r.n;
        while (i > 0 && r.d[i - 1] == '9')
            r.d[--i] = '0';
        if (i > 0) {
            r.d[i - 1]++;
        } else { /* all nines (or nothing): a new leading 1 */
            memmove(r.d + 1, r.d, r.n);
            r.d[0] = '1';
            r.n++;
        }
    }
    if (r.n == 0)
        r.neg = false;
    *out = r;
    return 0;
}
