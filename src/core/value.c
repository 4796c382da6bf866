/* core/value.c — SQL values and result sets (see value.h). */
#include "core/value.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "core/decimal.h"

value val_null(void)
{
    return (value){.type = VAL_NULL};
}

value val_int(int64_t i)
{
    return (value){.type = VAL_INT, .u.i = i};
}

value val_real(double d)
{
    return (value){.type = VAL_REAL, .u.d = d};
}

value val_bool(bool b)
{
    return (value){.type = VAL_BOOL, .u.b = b};
}

static value bytes(val_type t, const void *p, size_t len)
{
    char *c = len < SIZE_MAX ? malloc(len + 1) : NULL;
    if (!c)
        return val_null();
    if (len)
        memcpy(c, p, len);
    c[len] = '\0';
    return (value){.type = t, .u.s = {c, len}};
}

value val_text(const char *p, size_t len)
{
    return bytes(VAL_TEXT, p, len);
}

value val_blob(const void *p, size_t len)
{
    return bytes(VAL_BLOB, p, len);
}

value val_numeric(const char *p, size_t len)
{
    return dec_valid(p, len) ? bytes(VAL_NUMERIC, p, len) : val_null();
}

/* Whether v holds bytes (TEXT, BLOB or NUMERIC: u.s). */
static bool val_has_bytes(const value *v)
{
    return v->type == VAL_TEXT || v->type == VAL_BLOB || v->type == VAL_NUMERIC;
}

bool val_ok(const value *v, val_type wanted)
{
    return v->type == wanted;
}

void val_free(value *v)
{
    if (val_has_bytes(v))
        free(v->u.s.p);
    *v = val_null();
}

int val_copy(value *dst, const value *src)
{
    if (!val_has_bytes(src)) {
        *dst = *src;
        return 0;
    }
    *dst = bytes(src->type, src->u.s.p, src->u.s.len);
    return dst->type == src->type ? 0 : CITRUS_ENOMEM;
}

/* NULL < numbers < TEXT < BLOB */
static int kind(const value *v)
{
    switch (v->type) {
    case VAL_NULL:
        return 0;
    case VAL_INT:
    case VAL_REAL:
    case VAL_BOOL:
    case VAL_NUMERIC:
        return 1;
    case VAL_TEXT:
        return 2;
    case VAL_BLOB:
        return 3;
    }
    return 4;
}

static int64_t as_int(const value *v)
{
    return v->type == VAL_BOOL ? v->u.b : v->u.i;
}

/* An integer against a double, exactly (a double cast of an int64 beyond
 * 2^53 would round). NaN sorts above every number, as in PostgreSQL. */
static int cmp_int_real(int64_t i, double d)
{
    if (isnan(d))
        return -1;
    if (d >= 9223372036854775808.0)
        return -1;
    if (d < -9223372036854775808.0)
        return 1;
    double di = (double)i;
    if (di != d)
        return di < d ? -1 : 1;
    int64_t t = (int64_t)d; /* d is integral here and in range */
    return i < t ? -1 : i > t;
}

static int cmp_real(double x, double y)
{
    if (isnan(x) || isnan(y))
        return isnan(x) - isnan(y);
    return x < y ? -1 : x > y;
}

/* A number as the nearest double; x is its decimal when rc is 0. */
static double num_double(const value *v, const decimal *x, int rc)
{
    if (v->type == VAL_REAL)
        return v->u.d;
    if (rc == 0)
        return dec_to_double(x);
    return v->type == VAL_NUMERIC ? strtod(v->u.s.p, NULL) : (double)as_int(v);
}

/* A NUMERIC against any number: exactly against INT, BOOL and NUMERIC
 * (decimals), through the nearest double against REAL. */
static int cmp_decimal(const value *a, const value *b)
{
    decimal x = {0}, y = {0};
    int rx = a->type == VAL_NUMERIC ? dec_parse(a->u.s.p, a->u.s.len, &x)
             : a->type == VAL_REAL  ? CITRUS_EINVAL
                                    : dec_from_int(as_int(a), &x);
    int ry = b->type == VAL_NUMERIC ? dec_parse(b->u.s.p, b->u.s.len, &y)
             : b->type == VAL_REAL  ? CITRUS_EINVAL
                                    : dec_from_int(as_int(b), &y);
    int c;
    if (rx == 0 && ry == 0) {
        c = dec_cmp(&x, &y);
    } else { /* a REAL, or no memory: doubles */
        c = cmp_real(num_double(a, &x, rx), num_double(b, &y, ry));
    }
    dec_free(&x);
    dec_free(&y);
    return c;
}

static int cmp_num(const value *a, const value *b)
{
    if (a->type == VAL_NUMERIC || b->type == VAL_NUMERIC)
        return cmp_decimal(a, b);
    bool ra = a->type == VAL_REAL, rb = b->type == VAL_REAL;
    if (!ra && !rb) {
        int64_t x = as_int(a), y = as_int(b);
        return x < y ? -1 : x > y;
    }
    if (ra && rb)
        return cmp_real(a->u.d, b->u.d);
    return ra ? -cmp_int_real(as_int(b), a->u.d) : cmp_int_real(as_int(a), b->u.d);
}

int val_compare(const value *a, const value *b)
{
    int ka = kind(a), kb = kind(b);
    if (ka != kb)
        return ka < kb ? -1 : 1;
    if (ka == 0)
        return 0;
    if (ka == 1)
        return cmp_num(a, b);
    size_t n = a->u.s.len < b->u.s.len ? a->u.s.len : b->u.s.len;
    int c = n ? memcmp(a->u.s.p, b->u.s.p, n) : 0;
    if (c)
        return c < 0 ? -1 : 1;
    return a->u.s.len < b->u.s.len ? -1 : a->u.s.len > b->u.s.len;
}

void rs_init(result_set *rs)
{
    memset(rs, 0, sizeof(*rs));
}

void rs_free(result_set *rs)
{
    for (size_t i = 0; i < rs->nrows * rs->ncols; i++)
        val_free(&rs->cells[i]);
    free(rs->cells);
    for (size_t i = 0; i < rs->ncols; i++)
        free(rs->columns[i]);
    free(rs->columns);
    memset(rs, 0, sizeof(*rs));
}

int rs_set_columns(result_set *rs, const char *const *names, size_t n)
{
    if (rs->nrows > 0) /* the cells are laid out for the old width */
        return CITRUS_EINVAL;
    char **c = n ? calloc(n, sizeof(*c)) : NULL;
    if (n && !c)
        return CITRUS_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (!(c[i] = strdup(names[i]))) {
            while (i--)
                free(c[i]);
            free(c);
            return CITRUS_ENOMEM;
        }
    for (size_t i = 0; i < rs->ncols; i++)
        free(rs->columns[i]);
    free(rs->columns);
    rs->columns = c;
    rs->ncols = n;
    return 0;
}

int rs_append_row(result_set *rs, value *row)
{
    if (rs->nrows == rs->cap_rows) {
        size_t cap = rs->cap_rows ? rs->cap_rows * 2 : 16;
        size_t width = rs->ncols ? rs->ncols : 1;
        if (cap > SIZE_MAX / sizeof(value) / width)
            return CITRUS_ENOMEM;
        value *cells = realloc(rs->cells, cap * width * sizeof(*cells));
        if (!cells)
            return CITRUS_ENOMEM;
        rs->cells = cells;
        rs->cap_rows = cap;
    }
    for (size_t c = 0; c < rs->ncols; c++) {
        rs->cells[rs->nrows * rs->ncols + c] = row[c];
        row[c] = val_null();
    }
    rs->nrows++;
    return 0;
}

long rs_column(const result_set *rs, const char *name)
{
    for (size_t i = 0; i < rs->ncols; i++)
        if (strcmp(rs->columns[i], name) == 0)
            return (long)i;
    return -1;
}
