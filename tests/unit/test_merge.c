/* Unit tests for core/merge.c: concatenation, the ORDER BY k-way merge
 * (checked against sorting all rows at once, as one combined database
 * would), aggregates, and the shape and spec errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "citrus/errors.h"
#include "core/merge.h"
#include "core/value.h"

#define MAXIN 8
#define N(a) (sizeof(a) / sizeof((a)[0]))

static value text(const char *s)
{
    return val_text(s, strlen(s));
}

/* Sets comma-separated column names ("" for none). */
static void columns(result_set *rs, const char *list)
{
    char buf[256], *names[16], *save = NULL;
    size_t n = 0;
    snprintf(buf, sizeof(buf), "%s", list);
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        names[n++] = t;
    assert_int_equal(rs_set_columns(rs, (const char *const *)names, n), 0);
}

static void add(result_set *rs, value *row)
{
    assert_int_equal(rs_append_row(rs, row), 0);
}

/* n inputs with the same columns and no rows yet. */
static void inputs(result_set *in, size_t n, const char *cols)
{
    for (size_t i = 0; i < n; i++) {
        rs_init(&in[i]);
        columns(&in[i], cols);
    }
}

/* One row of ints per call: an input with a single int column "a". */
static void add_ints(result_set *rs, const int64_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        add(rs, (value[]){val_int(v[i])});
}

static void render_cell(const value *v, char *buf, size_t len)
{
    switch (v->type) {
    case VAL_NULL:
        snprintf(buf, len, "NULL");
        break;
    case VAL_INT:
        snprintf(buf, len, "%lld", (long long)v->u.i);
        break;
    case VAL_REAL:
        snprintf(buf, len, "r%g", v->u.d);
        break;
    case VAL_BOOL:
        snprintf(buf, len, "%s", v->u.b ? "true" : "false");
        break;
    case VAL_TEXT:
        snprintf(buf, len, "'%s'", v->u.s.p);
        break;
    case VAL_BLOB:
        snprintf(buf, len, "blob%zu", v->u.s.len);
        break;
    case VAL_NUMERIC:
        snprintf(buf, len, "n%s", v->u.s.p);
        break;
    }
}

/* "1,'x';2,NULL": rows separated by ';', cells by ','. */
static const char *render(const result_set *rs)
{
    static char out[4096];
    size_t len = 0;
    out[0] = '\0';
    for (size_t r = 0; r < rs->nrows; r++)
        for (size_t c = 0; c < rs->ncols; c++) {
            char cell[128];
            render_cell(rs_cell(rs, r, c), cell, sizeof(cell));
            len += (size_t)snprintf(out + len, sizeof(out) - len, "%s%s",
                                    c   ? ","
                                    : r ? ";"
                                        : "",
                                    cell);
            assert_true(len < sizeof(out));
        }
    return out;
}

/* The inputs are consumed whatever the outcome. */
static void assert_consumed(const result_set *in, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(in[i].nrows, 0);
        assert_int_equal(in[i].ncols, 0);
        assert_null(in[i].columns);
        assert_null(in[i].cells);
    }
}

/* Merges, expects success, returns the rendering, frees out. */
static const char *merged(result_set *in, size_t n, const merge_spec *spec)
{
    result_set out;
    rs_init(&out);
    errdetail e;
    int rc = merge_results(in, n, spec, &out, &e);
    if (rc)
        fail_msg("merge failed: %s", e.message);
    assert_int_equal(e.code, 0);
    assert_consumed(in, n);
    const char *s = render(&out);
    rs_free(&out);
    return s;
}

/* Merges, expects CITRUS_EINVAL with a message containing want; out
 * untouched. */
static void merge_fails(result_set *in, size_t n, const merge_spec *spec, const char *want)
{
    result_set out;
    rs_init(&out);
    errdetail e;
    assert_int_equal(merge_results(in, n, spec, &out, &e), CITRUS_EINVAL);
    assert_int_equal(e.code, CITRUS_EINVAL);
    if (!strstr(e.message, want))
        fail_msg("error \"%s\" does not contain \"%s\"", e.message, want);
    assert_int_equal(out.nrows, 0);
    assert_null(out.columns);
    assert_null(out.cells);
    assert_consumed(in, n);
}

/* ---- concatenation ---- */

static void concatenation(void **state)
{
    result_set in[3];
    inputs(in, 3, "a,b");
    add(&in[0], (value[]){val_int(1), text("x")});
    add(&in[0], (value[]){val_int(2), val_null()});
    add(&in[2], (value[]){val_int(3), val_real(0.5)});
    const char *big = in[0].cells[1].u.s.p;
    result_set out;
    rs_init(&out);
    assert_int_equal(merge_results(in, 3, NULL, &out, NULL), 0);
    assert_int_equal(out.ncols, 2);
    assert_string_equal(out.columns[1], "b");
    assert_string_equal(render(&out), "1,'x';2,NULL;3,r0.5");
    assert_ptr_equal(rs_cell(&out, 0, 1)->u.s.p, big); /* moved, not copied */
    /* the output is an ordinary result set: it can grow */
    add(&out, (value[]){val_int(4), val_null()});
    assert_int_equal(out.nrows, 4);
    rs_free(&out);
}

static void concatenation_limit(void **state)
{
    const int64_t a[] = {1, 2, 3}, b[] = {4, 5};
    size_t limits[] = {1, 2, 3, 4, 5, 6, 100};
    const char *want[] = {"1", "1;2", "1;2;3", "1;2;3;4", "1;2;3;4;5", "1;2;3;4;5", "1;2;3;4;5"};
    for (size_t t = 0; t < N(limits); t++) {
        result_set in[2];
        inputs(in, 2, "a");
        add_ints(&in[0], a, 3);
        add_ints(&in[1], b, 2);
        merge_spec spec = {.limit = limits[t]};
        assert_string_equal(merged(in, 2, &spec), want[t]);
    }
}

static void no_inputs(void **state)
{
    result_set out;
    rs_init(&out);
    merge_spec spec = {.order_by = (merge_key[]){{"a", false}}, .norder = 1};
    assert_int_equal(merge_results(NULL, 0, &spec, &out, NULL), 0);
    assert_int_equal(out.ncols, 0);
    assert_int_equal(out.nrows, 0);
}

static void ddl_results(void **state)
{
    result_set in[3];
    for (size_t i = 0; i < 3; i++)
        rs_init(&in[i]);
    result_set out;
    rs_init(&out);
    assert_int_equal(merge_results(in, 3, NULL, &out, NULL), 0);
    assert_int_equal(out.ncols, 0);
    assert_int_equal(out.nrows, 0);
    rs_free(&out);
}

/* ---- order by ---- */

static const merge_key by_a[] = {{"a", false}};
static const merge_key by_a_desc[] = {{"a", true}};

static void order_one_key(void **state)
{
    const int64_t x[] = {1, 4, 9}, y[] = {2, 3, 10}, z[] = {0, 5};
    result_set in[3];
    inputs(in, 3, "a");
    add_ints(&in[0], x, 3);
    add_ints(&in[1], y, 3);
    add_ints(&in[2], z, 2);
    merge_spec spec = {.order_by = by_a, .norder = 1};
    assert_string_equal(merged(in, 3, &spec), "0;1;2;3;4;5;9;10");
}

static void order_desc(void **state)
{
    const int64_t x[] = {9, 4, 1}, y[] = {10, 3, 2}, z[] = {5, 0};
    result_set in[3];
    inputs(in, 3, "a");
    add_ints(&in[0], x, 3);
    add_ints(&in[1], y, 3);
    add_ints(&in[2], z, 2);
    merge_spec spec = {.order_by = by_a_desc, .norder = 1};
    assert_string_equal(merged(in, 3, &spec), "10;9;5;4;3;2;1;0");
}

static void order_two_keys(void **state)
{
    /* ORDER BY a, b DESC */
    static const merge_key keys[] = {{"a", false}, {"b", true}};
    result_set in[2];
    inputs(in, 2, "a,b");
    add(&in[0], (value[]){val_int(1), text("z")});
    add(&in[0], (value[]){val_int(1), text("b")});
    add(&in[0], (value[]){val_int(2), text("c")});
    add(&in[1], (value[]){val_int(1), text("y")});
    add(&in[1], (value[]){val_int(2), text("d")});
    add(&in[1], (value[]){val_int(2), text("a")});
    merge_spec spec = {.order_by = keys, .norder = 2};
    assert_string_equal(merged(in, 2, &spec), "1,'z';1,'y';1,'b';2,'d';2,'c';2,'a'");
}

static void order_nulls(void **state)
{
    /* NULL sorts first ascending, so last descending */
    result_set in[2];
    inputs(in, 2, "a");
    add(&in[0], (value[]){val_null()});
    add(&in[0], (value[]){val_int(2)});
    add(&in[1], (value[]){val_null()});
    add(&in[1], (value[]){val_int(1)});
    merge_spec spec = {.order_by = by_a, .norder = 1};
    assert_string_equal(merged(in, 2, &spec), "NULL;NULL;1;2");

    inputs(in, 2, "a");
    add(&in[0], (value[]){val_int(2)});
    add(&in[0], (value[]){val_null()});
    add(&in[1], (value[]){val_int(3)});
    add(&in[1], (value[]){val_null()});
    spec.order_by = by_a_desc;
    assert_string_equal(merged(in, 2, &spec), "3;2;NULL;NULL");
}

static void order_mixed_numbers(void **state)
{
    result_set in[2];
    inputs(in, 2, "a");
    add(&in[0], (value[]){val_int(1)});
    add(&in[0], (value[]){val_real(2.0)});
    add(&in[0], (value[]){val_int(3)});
    add(&in[1], (value[]){val_real(1.5)});
    add(&in[1], (value[]){val_int(2)});
    add(&in[1], (value[]){val_real(2.5)});
    merge_spec spec = {.order_by = by_a, .norder = 1};
    /* 2.0 and 2 are equal: shard #0 first */
    assert_string_equal(merged(in, 2, &spec), "1;r1.5;r2;2;r2.5;3");
}

static void order_ties_stable(void **state)
{
    /* equal keys leave in shard order, then row order */
    result_set in[3];
    inputs(in, 3, "k,who");
    add(&in[2], (value[]){val_int(1), text("s2r0")});
    add(&in[2], (value[]){val_int(1), text("s2r1")});
    add(&in[0], (value[]){val_int(1), text("s0r0")});
    add(&in[1], (value[]){val_int(0), text("s1r0")});
    add(&in[1], (value[]){val_int(1), text("s1r1")});
    add(&in[0], (value[]){val_int(1), text("s0r1")});
    merge_spec spec = {.order_by = (merge_key[]){{"k", false}}, .norder = 1};
    assert_string_equal(merged(in, 3, &spec),
                        "0,'s1r0';1,'s0r0';1,'s0r1';1,'s1r1';1,'s2r0';1,'s2r1'");
}

static void order_limit(void **state)
{
    const int64_t x[] = {1, 3, 5}, y[] = {2, 4, 6};
    size_t limits[] = {1, 4, 6, 7, 1000};
    const char *want[] = {"1", "1;2;3;4", "1;2;3;4;5;6", "1;2;3;4;5;6", "1;2;3;4;5;6"};
    for (size_t t = 0; t < N(limits); t++) {
        result_set in[2];
        inputs(in, 2, "a");
        add_ints(&in[0], x, 3);
        add_ints(&in[1], y, 3);
        merge_spec spec = {.order_by = by_a, .norder = 1, .limit = limits[t]};
        assert_string_equal(merged(in, 2, &spec), want[t]);
    }
}

/* 1, 3 and 8 inputs, some of them empty (every third). */
static void order_input_counts(void **state)
{
    size_t counts[] = {1, 3, 8};
    for (size_t t = 0; t < N(counts); t++) {
        size_t n = counts[t];
        result_set in[MAXIN];
        inputs(in, n, "a");
        int64_t expect_rows = 0;
        for (size_t i = 0; i < n; i++)
            for (int64_t v = (int64_t)i; i % 3 != 1 && v < 40; v += (int64_t)n, expect_rows++)
                add(&in[i], (value[]){val_int(v)});
        merge_spec spec = {.order_by = by_a, .norder = 1};
        result_set out;
        rs_init(&out);
        assert_int_equal(merge_results(in, n, &spec, &out, NULL), 0);
        assert_int_equal(out.nrows, expect_rows);
        for (size_t r = 1; r < out.nrows; r++)
            assert_true(rs_cell(&out, r - 1, 0)->u.i < rs_cell(&out, r, 0)->u.i);
        rs_free(&out);
    }
}

static void order_all_empty(void **state)
{
    result_set in[3];
    inputs(in, 3, "a");
    merge_spec spec = {.order_by = by_a, .norder = 1, .limit = 5};
    assert_string_equal(merged(in, 3, &spec), "");
}

static void order_unsorted_inputs(void **state)
{
    /* not sorted: the order is not global, but no row is lost or doubled */
    const int64_t x[] = {5, 1}, y[] = {4, 2, 3};
    result_set in[2];
    inputs(in, 2, "a");
    add_ints(&in[0], x, 2);
    add_ints(&in[1], y, 3);
    merge_spec spec = {.order_by = by_a, .norder = 1, .limit = 4};
    assert_string_equal(merged(in, 2, &spec), "4;2;3;5");
}

static void order_unknown_key(void **state)
{
    result_set in[2];
    inputs(in, 2, "a,b");
    add(&in[1], (value[]){val_int(1), text("big")});
    merge_spec spec = {.order_by = (merge_key[]){{"a", false}, {"c", true}}, .norder = 2};
    merge_fails(in, 2, &spec, "\"c\"");
}

/* ---- randomized ORDER BY against one big sort ---- */

enum { RK1, RK2, RID, RCOLS };

typedef struct trow {
    value v[RCOLS];
    size_t pos; /* position in the concatenation: the tie-breaker */
} trow;

static const merge_key *g_keys;
static size_t g_nkeys;

static size_t key_col(const char *name)
{
    return strcmp(name, "k1") == 0 ? RK1 : strcmp(name, "k2") == 0 ? RK2 : RID;
}

/* The ORDER BY as one database would run it, stable. */
static int trow_cmp(const void *pa, const void *pb)
{
    const trow *a = pa, *b = pb;
    for (size_t k = 0; k < g_nkeys; k++) {
        size_t c = key_col(g_keys[k].column);
        int d = val_compare(&a->v[c], &b->v[c]);
        if (d)
            return g_keys[k].desc ? -d : d;
    }
    return a->pos < b->pos ? -1 : a->pos > b->pos;
}

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33) % n;
}

static value random_key(void)
{
    static const char *words[] = {"", "a", "ab", "b", "B", "\xc3\xa9"};
    switch (rnd(6)) {
    case 0:
        return val_null();
    case 1:
        return val_real((double)rnd(10) / 2); /* some equal to ints */
    case 2:
        return text(words[rnd(N(words))]);
    case 3:
        return val_blob(words[rnd(N(words))], rnd(2));
    default:
        return val_int((int64_t)rnd(5));
    }
}

/* Generates 8 shards of rows, each sorted, into rows (concatenated, pos
 * set) and counts[]; returns the total. Shard 3 is always empty. */
static size_t generate(trow *rows, size_t *counts)
{
    size_t total = 0;
    for (size_t s = 0; s < MAXIN; s++) {
        counts[s] = s == 3 ? 0 : rnd(30);
        trow *shard = rows + total;
        for (size_t r = 0; r < counts[s]; r++) {
            shard[r].v[RK1] = random_key();
            shard[r].v[RK2] = val_int((int64_t)rnd(3));
            shard[r].v[RID] = val_int((int64_t)(total + r));
            shard[r].pos = r;
        }
        qsort(shard, counts[s], sizeof(*shard), trow_cmp);
        for (size_t r = 0; r < counts[s]; r++)
            shard[r].pos = total + r;
        total += counts[s];
    }
    return total;
}

static void load_shards(result_set *in, const trow *rows, const size_t *counts)
{
    inputs(in, MAXIN, "k1,k2,id");
    size_t at = 0;
    for (size_t s = 0; s < MAXIN; s++)
        for (size_t r = 0; r < counts[s]; r++, at++) {
            value row[RCOLS];
            for (size_t c = 0; c < RCOLS; c++)
                assert_int_equal(val_copy(&row[c], &rows[at].v[c]), 0);
            add(&in[s], row);
        }
}

static void assert_same_rows(const result_set *out, const trow *want, size_t n)
{
    assert_int_equal(out->nrows, n);
    for (size_t r = 0; r < n; r++)
        for (size_t c = 0; c < RCOLS; c++) {
            const value *v = rs_cell(out, r, c);
            assert_int_equal(v->type, want[r].v[c].type);
            assert_int_equal(val_compare(v, &want[r].v[c]), 0);
        }
}

static void randomized_order(void **state)
{
    static const merge_key k1[] = {{"k1", false}};
    static const merge_key k1d_k2[] = {{"k1", true}, {"k2", false}};
    static const merge_key k2d_k1d[] = {{"k2", true}, {"k1", true}};
    static const merge_key k2_id[] = {{"k2", false}, {"id", true}};
    const struct {
        const merge_key *keys;
        size_t n;
    } orders[] = {{k1, 1}, {k1d_k2, 2}, {k2d_k1d, 2}, {k2_id, 2}};
    const size_t limits[] = {0, 1, 5, 37, 1000};
    rng_state = 42;
    for (int round = 0; round < 25; round++)
        for (size_t o = 0; o < N(orders); o++) {
            g_keys = orders[o].keys;
            g_nkeys = orders[o].n;
            trow rows[MAXIN * 30];
            size_t counts[MAXIN];
            size_t total = generate(rows, counts);
            trow all[MAXIN * 30];
            memcpy(all, rows, total * sizeof(*rows));
            qsort(all, total, sizeof(*all), trow_cmp);
            for (size_t l = 0; l < N(limits); l++) {
                result_set in[MAXIN], out;
                load_shards(in, rows, counts);
                rs_init(&out);
                merge_spec spec = {.order_by = g_keys, .norder = g_nkeys, .limit = limits[l]};
                assert_int_equal(merge_results(in, MAXIN, &spec, &out, NULL), 0);
                size_t want = limits[l] && limits[l] < total ? limits[l] : total;
                assert_same_rows(&out, all, want);
                rs_free(&out);
            }
            for (size_t r = 0; r < total; r++)
                for (size_t c = 0; c < RCOLS; c++)
                    val_free(&rows[r].v[c]);
        }
}

/* ---- aggregates ---- */

static const merge_agg per_column[] = {AGG_COUNT, AGG_SUM, AGG_MIN, AGG_MAX, AGG_FIRST};

static merge_spec aggs(const merge_agg *a, size_t n)
{
    return (merge_spec){.aggs = a, .naggs = n};
}

static void aggregate_columns(void **state)
{
    result_set in[4];
    inputs(in, 4, "n,s,lo,hi,g");
    add(&in[0], (value[]){val_int(3), val_int(10), val_int(5), val_int(5), text("x")});
    /* in[1]: no row, contributes nothing */
    add(&in[2], (value[]){val_null(), val_null(), val_null(), val_null(), text("y")});
    add(&in[3], (value[]){val_int(2), val_real(2.5), val_real(-1.5), val_int(7), text("z")});
    merge_spec spec = aggs(per_column, 5);
    assert_string_equal(merged(in, 4, &spec), "5,r12.5,r-1.5,7,'x'");
}

static void aggregate_ints_stay_ints(void **state)
{
    result_set in[3];
    inputs(in, 3, "n,s");
    add(&in[0], (value[]){val_int(1), val_int(INT64_MAX - 5)});
    add(&in[1], (value[]){val_int(1), val_int(5)});
    add(&in[2], (value[]){val_int(1), val_int(-3)});
    merge_spec spec = aggs((merge_agg[]){AGG_COUNT, AGG_SUM}, 2);
    assert_string_equal(merged(in, 3, &spec), "3,9223372036854775804");
}

static void aggregate_all_null(void **state)
{
    result_set in[3];
    inputs(in, 3, "n,s,lo,hi,g");
    for (size_t i = 0; i < 3; i++)
        add(&in[i], (value[]){val_null(), val_null(), val_null(), val_null(), val_null()});
    merge_spec spec = aggs(per_column, 5);
    assert_string_equal(merged(in, 3, &spec), "0,NULL,NULL,NULL,NULL");
}

static void aggregate_first_with_row(void **state)
{
    /* FIRST is the value of the first shard that has a row */
    result_set in[3];
    inputs(in, 3, "g");
    add(&in[1], (value[]){text("one")});
    add(&in[2], (value[]){text("two")});
    const char *p = in[1].cells[0].u.s.p;
    result_set out;
    rs_init(&out);
    merge_spec spec = aggs((merge_agg[]){AGG_FIRST}, 1);
    assert_int_equal(merge_results(in, 3, &spec, &out, NULL), 0);
    assert_string_equal(render(&out), "'one'");
    assert_ptr_equal(out.cells[0].u.s.p, p); /* moved */
    rs_free(&out);
}

static void aggregate_one_for_all(void **state)
{
    /* naggs == 1: every column; MIN/MAX across kinds follow val_compare */
    result_set in[3];
    inputs(in, 3, "a,b,c");
    add(&in[0], (value[]){val_int(1), text("pear"), val_null()});
    add(&in[1], (value[]){val_real(7.5), text("apple"), val_bool(true)});
    add(&in[2], (value[]){val_int(-2), val_int(100), val_bool(false)});
    merge_spec spec = aggs((merge_agg[]){AGG_MAX}, 1);
    assert_string_equal(merged(in, 3, &spec), "r7.5,'pear',true");
    inputs(in, 3, "a,b,c");
    add(&in[0], (value[]){val_int(1), text("pear"), val_null()});
    add(&in[1], (value[]){val_real(7.5), text("apple"), val_bool(true)});
    add(&in[2], (value[]){val_int(-2), text("zebra"), val_bool(false)});
    spec = aggs((merge_agg[]){AGG_MIN}, 1);
    assert_string_equal(merged(in, 3, &spec), "-2,'apple',false");
}

static void aggregate_empty_shards(void **state)
{
    /* no shard has a row (a GROUP BY with no group): no row */
    result_set in[3];
    inputs(in, 3, "n,s,lo,hi,g");
    result_set out;
    rs_init(&out);
    merge_spec spec = aggs(per_column, 5);
    assert_int_equal(merge_results(in, 3, &spec, &out, NULL), 0);
    assert_int_equal(out.ncols, 5);
    assert_int_equal(out.nrows, 0);
    rs_free(&out);
}

static value num(const char *s)
{
    value v = val_numeric(s, strlen(s));
    assert_int_equal(v.type, VAL_NUMERIC);
    return v;
}

static void aggregate_overflow_to_numeric(void **state)
{
    /* integer sums past 2^63 become exact decimals, not wrapped or doubles */
    result_set in[3];
    inputs(in, 3, "up,down,back");
    add(&in[0], (value[]){val_int(INT64_MAX), val_int(INT64_MIN), val_int(INT64_MAX)});
    add(&in[1], (value[]){val_int(INT64_MAX), val_int(-1), val_int(INT64_MAX)});
    add(&in[2], (value[]){val_int(2), val_int(0), val_int(-INT64_MAX)});
    merge_spec spec = aggs((merge_agg[]){AGG_SUM}, 1);
    /* back: an intermediate overflow whose total fits is an INT again */
    assert_string_equal(merged(in, 3, &spec),
                        "n18446744073709551616,n-9223372036854775809,9223372036854775807");
}

static void aggregate_numeric(void **state)
{
    /* PostgreSQL numeric (exact text) with SQLite integers: exact decimal
     * arithmetic; the scale is the widest input's */
    result_set in[3];
    inputs(in, 3, "n,total,lo,hi");
    add(&in[0], (value[]){val_int(2), num("0.10"), num("0.1"), num("99999999999999999999.5")});
    add(&in[1], (value[]){val_int(1), val_int(7), val_int(-3), val_int(INT64_MAX)});
    add(&in[2], (value[]){val_int(1), num("0.2"), num("-3.000001"), val_null()});
    merge_spec spec = aggs((merge_agg[]){AGG_COUNT, AGG_SUM, AGG_MIN, AGG_MAX}, 4);
    assert_string_equal(merged(in, 3, &spec), "4,n7.30,n-3.000001,n99999999999999999999.5");

    /* a REAL among them: a double, as PostgreSQL's numeric + float8 */
    inputs(in, 2, "s");
    add(&in[0], (value[]){num("1.5")});
    add(&in[1], (value[]){val_real(0.25)});
    spec = aggs((merge_agg[]){AGG_SUM}, 1);
    assert_string_equal(merged(in, 2, &spec), "r1.75");

    /* NULLs are skipped; only NULLs give NULL */
    inputs(in, 3, "s,m");
    add(&in[0], (value[]){val_null(), val_null()});
    add(&in[1], (value[]){num("-0.5"), num("2")});
    add(&in[2], (value[]){val_null(), num("10.0")});
    spec = aggs((merge_agg[]){AGG_SUM, AGG_MAX}, 2);
    assert_string_equal(merged(in, 3, &spec), "n-0.5,n10.0");

    /* max of 2^63-1 (INT) against a decimal one above it */
    inputs(in, 2, "m");
    add(&in[0], (value[]){val_int(INT64_MAX)});
    add(&in[1], (value[]){num("9223372036854775807.5")});
    spec = aggs((merge_agg[]){AGG_MAX}, 1);
    assert_string_equal(merged(in, 2, &spec), "n9223372036854775807.5");

    /* a count that came as an integral numeric still counts */
    inputs(in, 2, "n");
    add(&in[0], (value[]){num("3")});
    add(&in[1], (value[]){val_int(4)});
    spec = aggs((merge_agg[]){AGG_COUNT}, 1);
    assert_string_equal(merged(in, 2, &spec), "7");
}

static void aggregate_avg(void **state)
{
    /* each shard's average weighted by its count: (0.15*2 + 3*1) / 3 */
    result_set in[3];
    inputs(in, 3, "a,n");
    add(&in[0], (value[]){num("0.15"), val_int(2)});
    add(&in[1], (value[]){val_int(3), val_int(1)});
    add(&in[2], (value[]){val_null(), val_int(0)}); /* no rows there */
    merge_spec spec = aggs((merge_agg[]){AGG_AVG, AGG_COUNT}, 2);
    assert_string_equal(merged(in, 3, &spec), "n1.100000000000000,3");

    /* 16 significant digits, rounded half away from zero */
    inputs(in, 2, "n,a");
    add(&in[0], (value[]){val_int(2), val_int(1)});
    add(&in[1], (value[]){val_int(1), val_int(0)});
    spec = aggs((merge_agg[]){AGG_COUNT, AGG_AVG}, 2);
    assert_string_equal(merged(in, 2, &spec), "3,n0.6666666666666667");

    /* a REAL average (SQLite's avg): a double */
    inputs(in, 2, "a,n");
    add(&in[0], (value[]){val_real(1.5), val_int(2)});
    add(&in[1], (value[]){num("3"), val_int(2)});
    spec = aggs((merge_agg[]){AGG_AVG, AGG_COUNT}, 2);
    assert_string_equal(merged(in, 2, &spec), "r2.25,4");

    /* all empty: NULL */
    inputs(in, 2, "a,n");
    add(&in[0], (value[]){val_null(), val_int(0)});
    add(&in[1], (value[]){val_null(), val_int(0)});
    assert_string_equal(merged(in, 2, &spec), "NULL,0");

    /* without a count column there is nothing to weigh by */
    inputs(in, 2, "a");
    add(&in[0], (value[]){num("1")});
    add(&in[1], (value[]){num("2")});
    spec = aggs((merge_agg[]){AGG_AVG}, 1);
    merge_fails(in, 2, &spec, "avg column \"a\" needs a count column");

    /* text is no number to average */
    inputs(in, 2, "a,n");
    add(&in[0], (value[]){text("1.5"), val_int(1)});
    add(&in[1], (value[]){num("2"), val_int(1)});
    spec = aggs((merge_agg[]){AGG_AVG, AGG_COUNT}, 2);
    merge_fails(in, 2, &spec, "avg column \"a\": shard #0 returned a non-number");
}

static void aggregate_sum_text(void **state)
{
    result_set in[2];
    inputs(in, 2, "n,total");
    add(&in[0], (value[]){val_int(1), val_int(3)});
    add(&in[1], (value[]){val_int(1), text("3")});
    merge_spec spec = aggs((merge_agg[]){AGG_FIRST, AGG_SUM}, 2);
    merge_fails(in, 2, &spec, "sum column \"total\": shard #1");

    inputs(in, 2, "b");
    add(&in[0], (value[]){val_bool(true)});
    add(&in[1], (value[]){val_blob("x", 1)});
    spec = aggs((merge_agg[]){AGG_SUM}, 1);
    merge_fails(in, 2, &spec, "sum column \"b\": shard #0"); /* BOOL is no number to add */
}

static void aggregate_count_not_int(void **state)
{
    result_set in[2];
    inputs(in, 2, "n");
    add(&in[0], (value[]){val_int(1)});
    add(&in[1], (value[]){val_real(1.0)});
    merge_spec spec = aggs((merge_agg[]){AGG_COUNT}, 1);
    merge_fails(in, 2, &spec, "count column \"n\": shard #1");

    inputs(in, 2, "n");
    add(&in[0], (value[]){val_int(INT64_MAX)});
    add(&in[1], (value[]){val_int(1)});
    merge_fails(in, 2, &spec, "overflow");
}

static void aggregate_two_rows(void **state)
{
    result_set in[3];
    inputs(in, 3, "n,g");
    add(&in[0], (value[]){val_int(1), text("a")});
    add(&in[1], (value[]){val_int(1), text("b")});
    add(&in[1], (value[]){val_int(2), text("c")});
    merge_spec spec = aggs((merge_agg[]){AGG_COUNT, AGG_FIRST}, 2);
    merge_fails(in, 3, &spec, "shard #1 returned 2 rows");
}

static void aggregate_spec_errors(void **state)
{
    result_set in[2];
    inputs(in, 2, "a,b,c");
    merge_spec spec = aggs((merge_agg[]){AGG_MIN, AGG_MAX}, 2);
    merge_fails(in, 2, &spec, "2 aggregates for 3 columns");

    inputs(in, 2, "a");
    spec = aggs((merge_agg[]){AGG_MIN}, 1);
    spec.order_by = by_a;
    spec.norder = 1;
    merge_fails(in, 2, &spec, "ORDER BY");

    inputs(in, 2, "a");
    add(&in[0], (value[]){val_int(1)});
    spec = aggs((merge_agg[]){(merge_agg)99}, 1);
    merge_fails(in, 2, &spec, "unknown aggregate");
}

static void aggregate_limit_accepted(void **state)
{
    result_set in[2];
    inputs(in, 2, "n");
    add(&in[0], (value[]){val_int(2)});
    add(&in[1], (value[]){val_int(3)});
    merge_spec spec = aggs((merge_agg[]){AGG_COUNT}, 1);
    spec.limit = 1000;
    assert_string_equal(merged(in, 2, &spec), "5");
}

/* ---- shapes ---- */

static void shape_mismatch(void **state)
{
    result_set in[3];
    inputs(in, 1, "a,c");
    inputs(in + 1, 1, "a,c");
    inputs(in + 2, 1, "a,b");
    add(&in[0], (value[]){val_int(1), text("kept?")});
    merge_fails(in, 3, NULL, "shard #2 returned columns (a, b), shard #0 (a, c)");

    inputs(in, 1, "a");
    inputs(in + 1, 1, "a,b");
    merge_fails(in, 2, NULL, "shard #1 returned columns (a, b), shard #0 (a)");

    inputs(in, 1, "A");
    inputs(in + 1, 1, "a");
    merge_fails(in, 2, NULL, "shard #1 returned columns (a), shard #0 (A)");
}

static void shape_ddl_among_rows(void **state)
{
    /* no columns (DDL) is fine only if every shard is like that */
    result_set in[2];
    inputs(in, 1, "a");
    rs_init(&in[1]);
    merge_fails(in, 2, NULL, "shard #1 returned columns (), shard #0 (a)");
    rs_init(&in[0]);
    inputs(in + 1, 1, "a");
    merge_fails(in, 2, NULL, "shard #1 returned columns (a), shard #0 ()");
}

/* A column list longer than the detail's message is cut to fit it. */
static void long_error_truncated(void **state)
{
    char names[40][32];
    const char *p[40];
    for (size_t i = 0; i < 40; i++) {
        snprintf(names[i], sizeof(names[i]), "a_rather_long_column_name_%02zu", i);
        p[i] = names[i];
    }
    result_set in[2];
    rs_init(&in[0]);
    assert_int_equal(rs_set_columns(&in[0], p, 40), 0);
    inputs(in + 1, 1, "gamma");
    result_set out;
    rs_init(&out);
    errdetail e;
    assert_int_equal(merge_results(in, 2, NULL, &out, &e), CITRUS_EINVAL);
    assert_int_equal(e.code, CITRUS_EINVAL);
    assert_int_equal(strlen(e.message), sizeof(e.message) - 1);
    const char *head =
        "shard #1 returned columns (gamma), shard #0 (a_rather_long_column_name_00, ";
    assert_memory_equal(e.message, head, strlen(head));
}

static void agg_names(void **state)
{
    static const struct {
        const char *name;
        merge_agg agg;
    } ok[] = {{"first", AGG_FIRST}, {"count", AGG_COUNT}, {"sum", AGG_SUM},
              {"min", AGG_MIN},     {"max", AGG_MAX},     {"avg", AGG_AVG}};
    for (size_t i = 0; i < N(ok); i++) {
        merge_agg a = (merge_agg)-1;
        assert_int_equal(merge_agg_parse(ok[i].name, &a), 0);
        assert_int_equal(a, ok[i].agg);
    }
    const char *bad[] = {"", "average", "COUNT", "sum ", "mi", NULL};
    for (size_t i = 0; i < N(bad); i++) {
        merge_agg a = AGG_MAX;
        assert_int_equal(merge_agg_parse(bad[i], &a), CITRUS_EINVAL);
        assert_int_equal(a, AGG_MAX); /* untouched */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(concatenation),
        cmocka_unit_test(concatenation_limit),
        cmocka_unit_test(no_inputs),
        cmocka_unit_test(ddl_results),
        cmocka_unit_test(order_one_key),
        cmocka_unit_test(order_desc),
        cmocka_unit_test(order_two_keys),
        cmocka_unit_test(order_nulls),
        cmocka_unit_test(order_mixed_numbers),
        cmocka_unit_test(order_ties_stable),
        cmocka_unit_test(order_limit),
        cmocka_unit_test(order_input_counts),
        cmocka_unit_test(order_all_empty),
        cmocka_unit_test(order_unsorted_inputs),
        cmocka_unit_test(order_unknown_key),
        cmocka_unit_test(randomized_order),
        cmocka_unit_test(aggregate_columns),
        cmocka_unit_test(aggregate_ints_stay_ints),
        cmocka_unit_test(aggregate_all_null),
        cmocka_unit_test(aggregate_first_with_row),
        cmocka_unit_test(aggregate_one_for_all),
        cmocka_unit_test(aggregate_empty_shards),
        cmocka_unit_test(aggregate_overflow_to_numeric),
        cmocka_unit_test(aggregate_numeric),
        cmocka_unit_test(aggregate_avg),
        cmocka_unit_test(aggregate_sum_text),
        cmocka_unit_test(aggregate_count_not_int),
        cmocka_unit_test(aggregate_two_rows),
        cmocka_unit_test(aggregate_spec_errors),
        cmocka_unit_test(aggregate_limit_accepted),
        cmocka_unit_test(shape_mismatch),
        cmocka_unit_test(shape_ddl_among_rows),
        cmocka_unit_test(long_error_truncated),
        cmocka_unit_test(agg_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
