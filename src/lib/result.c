/* lib/result.c — citrus_result and its accessors (see result.h). */
#include "lib/result.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wire/rowjson.h"
#include "lib/conns.h"

struct citrus_result {
    result_set rs;
    char *shard_id;
    int64_t ring_version, changes;
    int truncated;
    int replica;
};

void citrus_result_free(citrus_result *r)
{
    if (!r)
        return;
    rs_free(&r->rs);
    free(r->shard_id);
    free(r);
}

/* A 64-bit integer in its string form ("-9007199254740993"), exactly. */
static bool int_text(const char *s, size_t len, int64_t *out)
{
    char *end;
    errno = 0;
    long long i = len ? strtoll(s, &end, 10) : 0;
    if (!len || errno || end != s + len)
        return false;
    *out = i;
    return true;
}

/* The cells of "int64-string" columns (integers the router sent as
 * strings, wire/rowjson.h) back into INT values. */
static int ints_from_strings(citrus_result *r, json_t *types, citrus_error *err)
{
    for (size_t c = 0; c < r->rs.ncols; c++) {
        const char *t = json_string_value(json_array_get(types, c));
        if (!t || strcmp(t, "int64-string") != 0)
            continue;
        for (size_t i = 0; i < r->rs.nrows; i++) {
            value *v = rs_cell(&r->rs, i, c);
            int64_t x;
            if (v->type == VAL_NULL)
                continue;
            if (v->type != VAL_TEXT || !int_text(v->u.s.p, v->u.s.len, &x))
                return conns_fail(err, CITRUS_ECORRUPT,
                                  "unexpected answer: rows[%zu][%zu] is not an integer", i, c);
            val_free(v);
            *v = val_int(x);
        }
    }
    return 0;
}

/* Column names, then every row through rowjson_params. */
static int fill(citrus_result *r, json_t *j, citrus_error *err)
{
    json_t *cols = json_object_get(j, "columns"), *rows = json_object_get(j, "rows");
    size_t nc = json_array_size(cols);
    if (!json_is_array(cols) || !json_is_array(rows))
        return conns_fail(err, CITRUS_ECORRUPT, "unexpected answer: no columns or rows");
    const char **names = nc ? calloc(nc, sizeof(*names)) : NULL;
    if (nc && !names)
        return conns_fail(err, CITRUS_ENOMEM, "out of memory");
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < nc; i++)
        if (!(names[i] = json_string_value(json_array_get(cols, i))))
            rc = conns_fail(err, CITRUS_ECORRUPT, "unexpected answer: columns[%zu]", i);
    if (rc == 0 && rs_set_columns(&r->rs, names, nc) < 0)
        rc = conns_fail(err, CITRUS_ENOMEM, "out of memory");
    free(names);
    for (size_t i = 0; rc == 0 && i < json_array_size(rows); i++) {
        value *v = NULL;
        size_t n = 0;
        json_t *row = json_array_get(rows, i);
        bool got = rowjson_params(row, nc, &v, &n, NULL) == 0;
        if (!got || n != nc || !json_is_array(row))
            rc = conns_fail(err, CITRUS_ECORRUPT, "unexpected answer: rows[%zu]", i);
        else if (rs_append_row(&r->rs, v) < 0)
            rc = conns_fail(err, CITRUS_ENOMEM, "out of memory");
        if (got) /* the values rs_append_row took are left NULL */
            rowjson_params_free(v, n);
    }
    return rc ? rc : ints_from_strings(r, json_object_get(j, "column_types"), err);
}

citrus_result *result_from_json(json_t *j, const char *shard_id, int64_t ring_version,
                                citrus_error *err)
{
    citrus_result *r = calloc(1, sizeof(*r));
    if (!r) {
        conns_fail(err, CITRUS_ENOMEM, "out of memory");
        return NULL;
    }
    rs_init(&r->rs);
    const char *sid = json_string_value(json_object_get(j, "shard_id"));
    json_t *rv = json_object_get(j, "ring_version");
    r->ring_version = json_is_integer(rv) ? json_integer_value(rv) : ring_version;
    r->changes = json_integer_value(json_object_get(j, "changes"));
    r->truncated = json_is_true(json_object_get(j, "truncated"));
    const char *served = json_string_value(json_object_get(j, "served_by"));
    r->replica = served && strcmp(served, "replica") == 0;
    int rc = fill(r, j, err);
    if (rc == 0 && !(r->shard_id = strdup(sid ? sid : shard_id ? shard_id : "")))
        rc = conns_fail(err, CITRUS_ENOMEM, "out of memory");
    if (rc < 0) {
        citrus_result_free(r);
        return NULL;
    }
    return r;
}

const char *citrus_result_shard_id(const citrus_result *r)
{
    return r->shard_id;
}

int citrus_result_from_replica(const citrus_result *r)
{
    return r->replica;
}

int64_t citrus_result_ring_version(const citrus_result *r)
{
    return r->ring_version;
}

int64_t citrus_result_changes(const citrus_result *r)
{
    return r->changes;
}

int citrus_result_truncated(const citrus_result *r)
{
    return r->truncated;
}

size_t citrus_result_column_count(const citrus_result *r)
{
    return r->rs.ncols;
}

const char *citrus_result_column_name(const citrus_result *r, size_t col)
{
    return col < r->rs.ncols ? r->rs.columns[col] : NULL;
}

size_t citrus_result_row_count(const citrus_result *r)
{
    return r->rs.nrows;
}

/* The cell, or NULL out of range. */
static const value *cell(const citrus_result *r, size_t row, size_t col)
{
    return row < r->rs.nrows && col < r->rs.ncols ? rs_cell(&r->rs, row, col) : NULL;
}

citrus_type citrus_result_type(const citrus_result *r, size_t row, size_t col)
{
    static const citrus_type types[] = {
        [VAL_NULL] = CITRUS_NULL, [VAL_INT] = CITRUS_INT,   [VAL_REAL] = CITRUS_REAL,
        [VAL_TEXT] = CITRUS_TEXT, [VAL_BOOL] = CITRUS_BOOL, [VAL_BLOB] = CITRUS_BLOB};
    const value *v = cell(r, row, col);
    return v ? types[v->type] : CITRUS_NULL;
}

double citrus_result_real(const citrus_result *r, size_t row, size_t col)
{
    const value *v = cell(r, row, col);
    if (!v)
        return 0;
    if (v->type == VAL_TEXT) { /* a numeric (exact decimal) as its digits */
        char *end;
        double d = v->u.s.len ? strtod(v->u.s.p, &end) : 0;
        return v->u.s.len && end == v->u.s.p + v->u.s.len ? d : 0;
    }
    return v->type == VAL_REAL   ? v->u.d
           : v->type == VAL_INT  ? (double)v->u.i
           : v->type == VAL_BOOL ? v->u.b
                                 : 0;
}

int64_t citrus_result_int(const citrus_result *r, size_t row, size_t col)
{
    const value *v = cell(r, row, col);
    int64_t i;
    if (v && v->type == VAL_INT)
        return v->u.i; /* exactly, beyond 2^53 too */
    if (v && v->type == VAL_TEXT && int_text(v->u.s.p, v->u.s.len, &i))
        return i; /* an integer in its string form, exactly */
    return (int64_t)citrus_result_real(r, row, col);
}

int citrus_result_bool(const citrus_result *r, size_t row, size_t col)
{
    return citrus_result_real(r, row, col) != 0;
}

/* The bytes of a TEXT or BLOB cell of type t, or NULL. */
static const char *bytes(const citrus_result *r, size_t row, size_t col, val_type t, size_t *len)
{
    const value *v = cell(r, row, col);
    bool ok = v && v->type == t;
    if (len)
        *len = ok ? v->u.s.len : 0;
    return ok ? v->u.s.p : NULL;
}

const char *citrus_result_text(const citrus_result *r, size_t row, size_t col, size_t *len)
{
    return bytes(r, row, col, VAL_TEXT, len);
}

const void *citrus_result_blob(const citrus_result *r, size_t row, size_t col, size_t *len)
{
    return bytes(r, row, col, VAL_BLOB, len);
}
