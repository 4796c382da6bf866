/* wire/rowjson.c — SQL values to and from the router's JSON (see rowjson.h). */
#include "wire/rowjson.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "wire/base64.h"

void rowjson_params_free(value *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        val_free(&v[i]);
    free(v);
}

static int one(json_t *j, value *out)
{
    switch (json_typeof(j)) {
    case JSON_NULL:
        *out = val_null();
        return 0;
    case JSON_TRUE:
    case JSON_FALSE:
        *out = val_bool(json_is_true(j));
        return 0;
    case JSON_INTEGER:
        *out = val_int(json_integer_value(j));
        return 0;
    case JSON_REAL:
        *out = val_real(json_real_value(j));
        return 0;
    case JSON_STRING:
        *out = val_text(json_string_value(j), json_string_length(j));
        return out->type == VAL_TEXT ? 0 : CITRUS_ENOMEM;
    case JSON_OBJECT: {
        json_t *b = json_object_get(j, "$bytes");
        if (!json_is_string(b) || json_object_size(j) != 1)
            return CITRUS_EBADJSON;
        size_t len;
        unsigned char *bytes = base64_decode(json_string_value(b), json_string_length(b), &len);
        if (!bytes)
            return CITRUS_EBADJSON;
        *out = val_blob(bytes, len);
        free(bytes);
        return out->type == VAL_BLOB ? 0 : CITRUS_ENOMEM;
    }
    default:
        return CITRUS_EBADJSON;
    }
}

int rowjson_params(json_t *params, size_t max, value **out, size_t *n, errdetail *e)
{
    *out = NULL;
    *n = 0;
    if (!params || json_is_null(params))
        return 0;
    if (!json_is_array(params))
        return errdetail_set(e, CITRUS_EBADJSON, ": must be an array of values");
    size_t cnt = json_array_size(params);
    if (cnt > max)
        return errdetail_set(e, CITRUS_ETOOMANY, ": at most %zu, got %zu", max, cnt);
    value *v = cnt ? calloc(cnt, sizeof(*v)) : NULL;
    if (cnt && !v)
        return errdetail_set(e, CITRUS_ENOMEM, ": out of memory");
    for (size_t i = 0; i < cnt; i++) {
        int rc = one(json_array_get(params, i), &v[i]);
        if (rc < 0) {
            rowjson_params_free(v, i);
            return errdetail_set(
                e, rc, "[%zu]: must be null, a boolean, a number, a string or {\"$bytes\": base64}",
                i);
        }
    }
    *out = v;
    *n = cnt;
    return 0;
}

json_t *rowjson_value(const value *v)
{
    switch (v->type) {
    case VAL_NULL:
        return json_null();
    case VAL_INT:
        return json_integer(v->u.i);
    case VAL_REAL:
        return json_real(v->u.d);
    case VAL_BOOL:
        return json_boolean(v->u.b);
    case VAL_TEXT:
    case VAL_NUMERIC:
        return json_stringn(v->u.s.p, v->u.s.len);
    case VAL_BLOB: {
        char *b = base64_encode((const unsigned char *)v->u.s.p, v->u.s.len);
        json_t *j = b ? json_pack("{s:s}", "$bytes", b) : NULL;
        free(b);
        return j;
    }
    }
    return json_null();
}

int rowjson_int64_parse(const char *name, rowjson_int64 *out)
{
    if (name && strcmp(name, "number") == 0)
        *out = ROWJSON_INT64_NUMBER;
    else if (name && strcmp(name, "string") == 0)
        *out = ROWJSON_INT64_STRING;
    else
        return CITRUS_EINVAL;
    return 0;
}

static const char *const type_names[] = {
    [VAL_NULL] = "null",    [VAL_INT] = "integer", [VAL_REAL] = "real",      [VAL_TEXT] = "text",
    [VAL_BOOL] = "boolean", [VAL_BLOB] = "bytes",  [VAL_NUMERIC] = "numeric"};

/* An INT, or a NUMERIC written without a point that fits in 64 bits (as
 * PostgreSQL's sum(bigint)): *i its value. */
static bool integer_of(const value *v, int64_t *i)
{
    if (v->type == VAL_INT) {
        *i = v->u.i;
        return true;
    }
    if (v->type != VAL_NUMERIC || strpbrk(v->u.s.p, ".eE"))
        return false;
    char *end;
    errno = 0;
    long long x = strtoll(v->u.s.p, &end, 10);
    if (errno || *end)
        return false;
    *i = x;
    return true;
}

static bool unsafe(int64_t i)
{
    return i > ROWJSON_SAFE_INT || i < -ROWJSON_SAFE_INT;
}

/* How a column is sent. */
typedef struct col_form {
    int kind;       /* a val_type; VAL_INT covers integral NUMERICs */
    bool mixed;     /* values of several kinds (SQLite) */
    bool as_string; /* integers as strings */
} col_form;

static const char *column_form(const result_set *rs, size_t c, rowjson_int64 mode, col_form *f)
{
    *f = (col_form){VAL_NULL, false, mode == ROWJSON_INT64_STRING};
    for (size_t r = 0; r < rs->nrows; r++) {
        const value *v = rs_cell(rs, r, c);
        int64_t i = 0;
        int kind = integer_of(v, &i) ? VAL_INT : (int)v->type;
        if (kind == VAL_NULL)
            continue;
        if (kind == VAL_INT && unsafe(i))
            f->as_string = true;
        if (f->kind == VAL_NULL || f->kind == kind)
            f->kind = kind;
        else if ((f->kind == VAL_INT || f->kind == VAL_NUMERIC) &&
                 (kind == VAL_INT || kind == VAL_NUMERIC))
            f->kind = VAL_NUMERIC; /* integers among decimals: all decimal strings */
        else
            f->mixed = true;
    }
    if (f->mixed)
        return "mixed";
    if (f->kind == VAL_INT && f->as_string)
        return "int64-string";
    return type_names[f->kind];
}

static json_t *int_string(int64_t i)
{
    char buf[24];
    int k = snprintf(buf, sizeof(buf), "%lld", (long long)i);
    return json_stringn(buf, (size_t)k);
}

static json_t *cell_json(const value *v, rowjson_int64 mode, const col_form *f)
{
    int64_t i = 0;
    if (!integer_of(v, &i) || (f->kind == VAL_NUMERIC && !f->mixed))
        return v->type == VAL_INT ? int_string(i) : rowjson_value(v); /* decimals: strings */
    bool str = f->mixed ? mode == ROWJSON_INT64_STRING || unsafe(i) : f->as_string;
    return str ? int_string(i) : json_integer(i);
}

json_t *rowjson_result(const result_set *rs, rowjson_int64 mode)
{
    json_t *cols = json_array(), *types = json_array(), *rows = json_array();
    col_form *f = calloc(rs->ncols ? rs->ncols : 1, sizeof(*f));
    if (!f) {
        json_decref(cols);
        json_decref(types);
        json_decref(rows);
        return NULL;
    }
    for (size_t c = 0; c < rs->ncols; c++) {
        json_array_append_new(cols, json_string(rs->columns[c]));
        json_array_append_new(types, json_string(column_form(rs, c, mode, &f[c])));
    }
    for (size_t i = 0; i < rs->nrows; i++) {
        json_t *row = json_array();
        for (size_t c = 0; c < rs->ncols; c++)
            json_array_append_new(row, cell_json(rs_cell(rs, i, c), mode, &f[c]));
        json_array_append_new(rows, row);
    }
    free(f);
    return json_pack("{s:o,s:o,s:o}", "columns", cols, "column_types", types, "rows", rows);
}
