/* wire/rowjson.c — SQL values to and from the router's JSON (see rowjson.h). */
#include "wire/rowjson.h"

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

json_t *rowjson_result(const result_set *rs)
{
    json_t *cols = json_array(), *rows = json_array();
    for (size_t c = 0; c < rs->ncols; c++)
        json_array_append_new(cols, json_string(rs->columns[c]));
    for (size_t i = 0; i < rs->nrows; i++) {
        json_t *row = json_array();
        for (size_t c = 0; c < rs->ncols; c++)
            json_array_append_new(row, rowjson_value(rs_cell(rs, i, c)));
        json_array_append_new(rows, row);
    }
    return json_pack("{s:o,s:o}", "columns", cols, "rows", rows);
}
