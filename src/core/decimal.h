/* core/decimal.h — exact decimal numbers of any size, for merging the
 * shards' numeric/decimal values and integer sums past 2^63 (pure: no I/O).
 *
 * A decimal is a sign, the digits of its unscaled magnitude (ASCII, most
 * significant first, no leading zero; none for zero) and a scale (digits
 * after the point): 12.50 is {+, "1250", 2}. The scale is kept as given
 * (PostgreSQL's display scale): 1.50 + 2 is 3.50.
 *
 * Text form: [+-]digits[.digits] or [+-].digits, optionally an exponent
 * ([eE][+-]digits, at most 1000 either way; the scale it gives at most
 * DEC_MAX_SCALE); NaN and Infinity are not
 * decimals (dec_parse refuses them, so the merge reports a non-number).
 * Every function returning int gives 0, CITRUS_EINVAL (bad text, division
 * by zero, a scale past DEC_MAX_SCALE) or CITRUS_ENOMEM; on error the output
 * is left zero (nothing to free, dec_free is still fine). */
#ifndef CITRUS_CORE_DECIMAL_H
#define CITRUS_CORE_DECIMAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEC_MAX_SCALE 1000  /* digits after the point (PostgreSQL's display limit) */
#define DEC_MAX_DIGITS 4096 /* digits of a parsed number, before the scale */
#define DEC_AVG_DIGITS 16   /* significant digits of a quotient, at least */

typedef struct decimal {
    bool neg;
    char *d; /* n digits, owned (NULL when n == 0) */
    size_t n;
    size_t scale;
} decimal;

void dec_free(decimal *x);
int dec_parse(const char *s, size_t len, decimal *out);
int dec_from_int(int64_t i, decimal *out);
/* The nearest double (strtod of the text form). */
double dec_to_double(const decimal *x);
/* 0 and *out when x is an integer (scale 0 or only zeros after the point)
 * that fits in 64 bits; CITRUS_EINVAL otherwise. */
int dec_to_int(const decimal *x, int64_t *out);

/* a + b, scale max of both. out may not alias a or b. */
int dec_add(const decimal *a, const decimal *b, decimal *out);
/* a * k, a's scale. */
int dec_mul_int(const decimal *a, int64_t k, decimal *out);
/* a / k (k != 0), rounded half away from zero (as PostgreSQL rounds) to
 * scale max(a's scale, DEC_AVG_DIGITS - 1 - e) where e is the decimal
 * exponent of the quotient's leading digit (1234.5 has e 3, 0.012 has e -2),
 * i.e. at least DEC_AVG_DIGITS significant digits; at most DEC_MAX_SCALE. */
int dec_div_int(const decimal *a, int64_t k, decimal *out);
/* <0, 0, >0 by value (2.50 equals 2.5). */
int dec_cmp(const decimal *a, const decimal *b);
/* The text form, "-12.50", "0", "0.05" (malloc'ed, NUL-terminated; *len
 * set when len is not NULL); NULL when out of memory. */
char *dec_text(const decimal *x, size_t *len);

/* Whether s[0..len) is a decimal in text form (as dec_parse accepts). */
bool dec_valid(const char *s, size_t len);

#endif
