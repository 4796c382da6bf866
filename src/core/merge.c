/* core/merge.c — scatter-gather: one answer from the result sets of a query
 * run on every shard (see merge.h). Pure: no I/O.
 *
 * Everything that can fail (shape and spec checks, the one allocation of the
 * output rows) happens before any value moves, so an error leaves nothing
 * half-built; values then move from the inputs into the output (text and
 * blobs are never copied) and the inputs are freed, success or not. */
#include "core/merge.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "core/decimal.h"

/* ---- error messages ---- */

/* A bounded string being built in a buffer (may be NULL). */
typedef struct msg {
    char *p;
    size_t cap, len;
} msg;

static void msg_add(msg *m, const char *fmt, ...)
{
    if (!m->p || m->cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(m->p + m->len, m->cap - m->len, fmt, ap);
    va_end(ap);
    if (k > 0)
        m->len = m->len + (size_t)k < m->cap ? m->len + (size_t)k : m->cap - 1;
}

static int no_memory(errdetail *e)
{
    return errdetail_set(e, CITRUS_ENOMEM, "out of memory merging shard results");
}

/* "(a, b)" */
static void msg_columns(msg *m, const result_set *rs)
{
    msg_add(m, "(");
    for (size_t c = 0; c < rs->ncols; c++)
        msg_add(m, "%s%s", c ? ", " : "", rs->columns[c]);
    msg_add(m, ")");
}

/* ---- shapes and moving rows ---- */

static bool same_columns(const result_set *a, const result_set *b)
{
    if (a->ncols != b->ncols)
        return false;
    for (size_t c = 0; c < a->ncols; c++)
        if (strcmp(a->columns[c], b->columns[c]) != 0)
            return false;
    return true;
}

/* Every input has input 0's column names in the same order. */
static int check_shapes(const result_set *in, size_t n, errdetail *e)
{
    for (size_t i = 1; i < n; i++) {
        if (same_columns(&in[i], &in[0]))
            continue;
        char buf[sizeof(e->message)];
        msg m = {buf, sizeof(buf), 0};
        buf[0] = '\0';
        msg_add(&m, "shard #%zu returned columns ", i);
        msg_columns(&m, &in[i]);
        msg_add(&m, ", shard #0 ");
        msg_columns(&m, &in[0]);
        return errdetail_set(e, CITRUS_EINVAL, "%s", buf);
    }
    return 0;
}

static size_t total_rows(const result_set *in, size_t n)
{
    size_t t = 0;
    for (size_t i = 0; i < n; i++)
        t += in[i].nrows;
    return t;
}

/* Room for `rows` rows of ncols cells in res (as rs_append_row lays them
 * out: one cell per row even without columns). */
static int alloc_rows(result_set *res, size_t ncols, size_t rows)
{
    size_t width = ncols ? ncols : 1;
    if (rows == 0)
        return 0;
    if (rows > SIZE_MAX / width / sizeof(value))
        return CITRUS_ENOMEM;
    res->cells = malloc(rows * width * sizeof(value));
    if (!res->cells)
        return CITRUS_ENOMEM;
    res->cap_rows = rows;
    return 0;
}

static value take(value *v)
{
    value t = *v;
    *v = val_null();
    return t;
}

/* Moves row r of src to the end of res (room already allocated). */
static void move_row(result_set *res, result_set *src, size_t r)
{
    for (size_t c = 0; c < src->ncols; c++)
        res->cells[res->nrows * src->ncols + c] = take(rs_cell(src, r, c));
    res->nrows++;
}

/* ---- concatenation ---- */

static int concatenate(result_set *in, size_t n, size_t limit, result_set *res)
{
    size_t want = total_rows(in, n);
    if (limit && limit < want)
        want = limit;
    if (alloc_rows(res, in[0].ncols, want))
        return CITRUS_ENOMEM;
    for (size_t i = 0; i < n; i++)
        for (size_t r = 0; r < in[i].nrows && res->nrows < want; r++)
            move_row(res, &in[i], r);
    return 0;
}

/* ---- order by: k-way merge ---- */

typedef struct order {
    const result_set *in;
    const merge_key *keys;
    size_t nkeys;
    size_t *cols; /* column of each key */
    size_t *cur;  /* current row of each input */
    size_t *heap; /* inputs with rows left, smallest current row first */
    size_t len;
} order;

/* Orders the current rows of inputs a and b: the keys, then input index
 * (rows of one input leave in their own order, so the merge is stable). */
static int row_cmp(const order *o, size_t a, size_t b)
{
    for (size_t k = 0; k < o->nkeys; k++) {
        int c = val_compare(rs_cell(&o->in[a], o->cur[a], o->cols[k]),
                            rs_cell(&o->in[b], o->cur[b], o->cols[k]));
        if (c)
            return o->keys[k].desc ? -c : c;
    }
    return a < b ? -1 : a > b;
}

static void sift_down(order *o, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < o->len && row_cmp(o, o->heap[l], o->heap[m]) < 0)
            m = l;
        if (r < o->len && row_cmp(o, o->heap[r], o->heap[m]) < 0)
            m = r;
        if (m == i)
            return;
        size_t t = o->heap[i];
        o->heap[i] = o->heap[m];
        o->heap[m] = t;
        i = m;
    }
}

static int resolve_keys(const result_set *rs, const merge_key *keys, size_t nkeys, size_t *cols,
                        errdetail *e)
{
    for (size_t k = 0; k < nkeys; k++) {
        long c = keys[k].column ? rs_column(rs, keys[k].column) : -1;
        if (c < 0)
            return errdetail_set(e, CITRUS_EINVAL, "ORDER BY column \"%s\" is not in the result",
                                 keys[k].column ? keys[k].column : "(null)");
        cols[k] = (size_t)c;
    }
    return 0;
}

/* Emits rows smallest first until `want` rows or the inputs run out. */
static void merge_heap(order *o, result_set *in, size_t want, result_set *res)
{
    for (size_t i = o->len / 2; i-- > 0;)
        sift_down(o, i);
    while (o->len && res->nrows < want) {
        size_t top = o->heap[0];
        move_row(res, &in[top], o->cur[top]++);
        if (o->cur[top] == in[top].nrows)
            o->heap[0] = o->heap[--o->len];
        sift_down(o, 0);
    }
}

static int merge_ordered(result_set *in, size_t n, const merge_spec *spec, result_set *res,
                         errdetail *e)
{
    order o = {.in = in, .keys = spec->order_by, .nkeys = spec->norder};
    size_t *mem = calloc(o.nkeys + 2 * n, sizeof(*mem));
    if (!mem)
        return no_memory(e);
    o.cols = mem;
    o.cur = mem + o.nkeys;
    o.heap = o.cur + n;
    int rc = resolve_keys(&in[0], o.keys, o.nkeys, o.cols, e);
    size_t want = total_rows(in, n);
    if (spec->limit && spec->limit < want)
        want = spec->limit;
    if (!rc && alloc_rows(res, in[0].ncols, want))
        rc = no_memory(e);
    if (!rc) {
        for (size_t i = 0; i < n; i++)
            if (in[i].nrows)
                o.heap[o.len++] = i;
        merge_heap(&o, in, want, res);
    }
    free(mem);
    return rc;
}

/* ---- aggregates ---- */

/* The first input with a row, or n. */
static size_t first_with_row(const result_set *in, size_t n)
{
    size_t i = 0;
    while (i < n && in[i].nrows == 0)
        i++;
    return i;
}

/* A NUMERIC's value as a decimal (0, CITRUS_EINVAL: not one,
 * CITRUS_ENOMEM). */
static int numeric_of(const value *v, decimal *out)
{
    return v->type == VAL_NUMERIC ? dec_parse(v->u.s.p, v->u.s.len, out)
                                  : dec_from_int(v->u.i, out);
}

/* An exact decimal as a NUMERIC value. */
static int numeric_value(const decimal *x, value *out)
{
    size_t len;
    char *t = dec_text(x, &len);
    *out = t ? val_numeric(t, len) : val_null();
    free(t);
    return out->type == VAL_NUMERIC ? 0 : CITRUS_ENOMEM;
}

static int agg_count(result_set *in, size_t n, size_t c, value *out, errdetail *e)
{
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (!in[i].nrows)
            continue;
        const value *v = rs_cell(&in[i], 0, c);
        if (v->type == VAL_NULL)
            continue;
        int64_t k = v->u.i;
        decimal x = {0};
        bool ok = v->type == VAL_INT ||
                  (v->type == VAL_NUMERIC && numeric_of(v, &x) == 0 && dec_to_int(&x, &k) == 0);
        dec_free(&x);
        if (!ok)
            return errdetail_set(e, CITRUS_EINVAL,
                                 "count column \"%s\": shard #%zu returned a non-integer",
                                 in[0].columns[c], i);
        if (__builtin_add_overflow(sum, k, &sum))
            return errdetail_set(e, CITRUS_EINVAL, "count column \"%s\" overflows",
                                 in[0].columns[c]);
    }
    *out = val_int(sum);
    return 0;
}

/* A sum: integers add in 64 bits until they overflow, then (or once a
 * NUMERIC shows up) exactly as a decimal; a REAL makes it a double. */
typedef struct sum_acc {
    int64_t i;
    decimal dec; /* when exact: the sum so far, i not used */
    double d;    /* the REALs */
    bool any, exact, numeric, real;
} sum_acc;

/* Adds a number (INT, NUMERIC or REAL; scaled by weight, 1 for a plain
 * sum). 0, CITRUS_EINVAL (not a number), CITRUS_ENOMEM. */
static int sum_add(sum_acc *s, const value *v, int64_t weight)
{
    if (v->type == VAL_REAL) {
        s->d += v->u.d * (double)weight;
        s->any = s->real = true;
        return 0;
    }
    if (v->type != VAL_INT && v->type != VAL_NUMERIC)
        return CITRUS_EINVAL;
    s->any = true;
    s->numeric |= v->type == VAL_NUMERIC;
    int64_t t;
    if (!s->exact && v->type == VAL_INT && !__builtin_mul_overflow(v->u.i, weight, &t) &&
        !__builtin_add_overflow(s->i, t, &t)) {
        s->i = t;
        return 0;
    }
    if (!s->exact) { /* from now on, decimals */
        int rc = dec_from_int(s->i, &s->dec);
        if (rc)
            return rc;
        s->exact = true;
    }
    decimal x = {0}, y = {0}, sum = {0};
    int rc = numeric_of(v, &x);
    if (rc == 0)
        rc = dec_mul_int(&x, weight, &y);
    if (rc == 0)
        rc = dec_add(&s->dec, &y, &sum);
    dec_free(&x);
    dec_free(&y);
    if (rc == 0) {
        dec_free(&s->dec);
        s->dec = sum;
    }
    return rc;
}

/* The sum as a value: NULL (no number), REAL (a REAL was added), INT (only
 * INTs, and the total fits), else NUMERIC. */
static int sum_value(sum_acc *s, value *out)
{
    int64_t i = s->i;
    if (!s->any)
        *out = val_null();
    else if (s->real)
        *out = val_real((s->exact ? dec_to_double(&s->dec) : (double)s->i) + s->d);
    else if (!s->exact || (!s->numeric && dec_to_int(&s->dec, &i) == 0))
        *out = val_int(i);
    else
        return numeric_value(&s->dec, out);
    return 0;
}

static int not_a_number(errdetail *e, int rc, const char *what, const char *col, size_t shard)
{
    if (rc == CITRUS_ENOMEM)
        return no_memory(e);
    return errdetail_set(e, CITRUS_EINVAL, "%s column \"%s\": shard #%zu returned a non-number",
                         what, col, shard);
}

static int agg_sum(result_set *in, size_t n, size_t c, value *out, errdetail *e)
{
    sum_acc s = {0};
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const value *v = in[i].nrows ? rs_cell(&in[i], 0, c) : NULL;
        if (v && v->type != VAL_NULL && (rc = sum_add(&s, v, 1)) < 0)
            rc = not_a_number(e, rc, "sum", in[0].columns[c], i);
    }
    if (!rc && sum_value(&s, out) < 0)
        rc = no_memory(e);
    dec_free(&s.dec);
    return rc;
}

/* AVG: each shard's average weighted by its count (column cc):
 * sum(avg_i * count_i) / sum(count_i), exactly (a NUMERIC, rounded as
 * dec_div_int says) unless a shard gave a REAL. */
static int agg_avg(result_set *in, size_t n, size_t c, long cc, value *out, errdetail *e)
{
    if (cc < 0)
        return errdetail_set(e, CITRUS_EINVAL,
                             "avg column \"%s\" needs a count column (count of the averaged "
                             "values, aggregate \"count\") to weigh each shard's average",
                             in[0].columns[c]);
    sum_acc s = {0};
    int64_t total = 0;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const value *v = in[i].nrows ? rs_cell(&in[i], 0, c) : NULL;
        const value *k = in[i].nrows ? rs_cell(&in[i], 0, (size_t)cc) : NULL;
        if (!v || v->type == VAL_NULL || k->type != VAL_INT || k->u.i <= 0)
            continue; /* no rows there (a count that is not an integer: agg_count says so) */
        if ((rc = sum_add(&s, v, k->u.i)) < 0)
            rc = not_a_number(e, rc, "avg", in[0].columns[c], i);
        else if (__builtin_add_overflow(total, k->u.i, &total))
            rc =
                errdetail_set(e, CITRUS_EINVAL, "count column \"%s\" overflows", in[0].columns[cc]);
    }
    if (rc || !s.any || total == 0) {
        *out = val_null();
    } else if (s.real) {
        value t;
        sum_value(&s, &t);
        *out = val_real(t.u.d / (double)total);
    } else {
        decimal q;
        if (!s.exact)
            rc = dec_from_int(s.i, &s.dec);
        if (rc == 0 && (rc = dec_div_int(&s.dec, total, &q)) == 0) {
            rc = numeric_value(&q, out);
            dec_free(&q);
        }
        if (rc)
            rc = no_memory(e);
    }
    dec_free(&s.dec);
    return rc;
}

/* MIN (sign 1) or MAX (sign -1), NULLs ignored; the value moves. */
static void agg_extreme(result_set *in, size_t n, size_t c, int sign, value *out)
{
    value *best = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!in[i].nrows)
            continue;
        value *v = rs_cell(&in[i], 0, c);
        if (v->type != VAL_NULL && (!best || sign * val_compare(v, best) < 0))
            best = v;
    }
    *out = best ? take(best) : val_null();
}

static int agg_column(result_set *in, size_t n, size_t c, merge_agg a, long count_col, value *out,
                      errdetail *e)
{
    switch (a) {
    case AGG_AVG:
        return agg_avg(in, n, c, count_col, out, e);
    case AGG_COUNT:
        return agg_count(in, n, c, out, e);
    case AGG_SUM:
        return agg_sum(in, n, c, out, e);
    case AGG_MIN:
        agg_extreme(in, n, c, 1, out);
        return 0;
    case AGG_MAX:
        agg_extreme(in, n, c, -1, out);
        return 0;
    case AGG_FIRST:
        *out = take(rs_cell(&in[first_with_row(in, n)], 0, c));
        return 0;
    }
    return errdetail_set(e, CITRUS_EINVAL, "unknown aggregate %d", (int)a);
}

static int check_aggregate(const result_set *in, size_t n, const merge_spec *spec, errdetail *e)
{
    if (spec->order_by && spec->norder)
        return errdetail_set(e, CITRUS_EINVAL,
                             "ORDER BY cannot be merged with aggregates (the answer is one row)");
    if (spec->naggs != 1 && spec->naggs != in[0].ncols)
        return errdetail_set(e, CITRUS_EINVAL, "%zu aggregates for %zu columns", spec->naggs,
                             in[0].ncols);
    for (size_t i = 0; i < n; i++)
        if (in[i].nrows > 1)
            return errdetail_set(e, CITRUS_EINVAL,
                                 "shard #%zu returned %zu rows to an aggregate (one expected)", i,
                                 in[i].nrows);
    return 0;
}

static int aggregate(result_set *in, size_t n, const merge_spec *spec, result_set *res,
                     errdetail *e)
{
    int rc = check_aggregate(in, n, spec, e);
    if (rc || first_with_row(in, n) == n)
        return rc; /* no shard has a row: no row (a GROUP BY with no group) */
    size_t ncols = in[0].ncols;
    if (alloc_rows(res, ncols, 1))
        return no_memory(e);
    long count_col = -1; /* the first count column: avg's weights */
    for (size_t c = 0; c < ncols && count_col < 0; c++)
        if ((spec->naggs == 1 ? spec->aggs[0] : spec->aggs[c]) == AGG_COUNT)
            count_col = (long)c;
    for (size_t c = 0; c < ncols && !rc; c++) {
        merge_agg a = spec->naggs == 1 ? spec->aggs[0] : spec->aggs[c];
        rc = agg_column(in, n, c, a, count_col, &res->cells[c], e);
        if (rc)
            while (c--)
                val_free(&res->cells[c]);
    }
    if (rc) {
        free(res->cells);
        rs_init(res);
    } else {
        res->nrows = 1;
    }
    return rc;
}

/* ---- entry points ---- */

int merge_agg_parse(const char *name, merge_agg *out)
{
    static const struct {
        const char *name;
        merge_agg agg;
    } names[] = {{"first", AGG_FIRST}, {"count", AGG_COUNT}, {"sum", AGG_SUM},
                 {"min", AGG_MIN},     {"max", AGG_MAX},     {"avg", AGG_AVG}};
    for (size_t i = 0; name && i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(name, names[i].name) == 0) {
            *out = names[i].agg;
            return 0;
        }
    return CITRUS_EINVAL;
}

static int dispatch(result_set *in, size_t n, const merge_spec *spec, result_set *res, errdetail *e)
{
    static const merge_spec plain = {0};
    if (!spec)
        spec = &plain;
    int rc = check_shapes(in, n, e);
    if (rc)
        return rc;
    if (spec->aggs)
        return aggregate(in, n, spec, res, e);
    if (spec->order_by && spec->norder)
        return merge_ordered(in, n, spec, res, e);
    rc = concatenate(in, n, spec->limit, res);
    return rc ? no_memory(e) : 0;
}

/* Gives res input 0's column names (its rows are already moved or freed). */
static void take_columns(result_set *res, result_set *in0)
{
    for (size_t i = 0; i < in0->nrows * in0->ncols; i++)
        val_free(&in0->cells[i]);
    in0->nrows = 0;
    res->columns = in0->columns;
    res->ncols = in0->ncols;
    in0->columns = NULL;
    in0->ncols = 0;
}

int merge_results(result_set *in, size_t n, const merge_spec *spec, result_set *out, errdetail *e)
{
    errdetail_clear(e);
    if (n == 0)
        return 0; /* nothing ran: no columns, no rows */
    result_set res;
    rs_init(&res);
    int rc = dispatch(in, n, spec, &res, e);
    if (!rc) {
        take_columns(&res, &in[0]);
        *out = res;
    }
    for (size_t i = 0; i < n; i++)
        rs_free(&in[i]);
    return rc;
}
