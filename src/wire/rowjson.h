/* wire/rowjson.h — SQL values to and from the router's JSON: parameters are
 * JSON scalars (integer -> INT, real -> REAL, string -> TEXT, true/false ->
 * BOOL, null -> NULL, {"$bytes": "<base64>"} -> BLOB); result cells come
 * back the same way. */
#ifndef CITRUS_WIRE_ROWJSON_H
#define CITRUS_WIRE_ROWJSON_H

#include <jansson.h>
#include <stddef.h>

#include "core/errdetail.h"
#include "core/value.h"

/* params: NULL (none) or an array of at most max scalars. 0, or
 * CITRUS_EBADJSON / CITRUS_ETOOMANY with e naming the element, written
 * to follow the field's name ("[3]: must be ...", ": must be ..."). */
int rowjson_params(json_t *params, size_t max, value **out, size_t *n, errdetail *e);
void rowjson_params_free(value *v, size_t n);

json_t *rowjson_value(const value *v);
/* {"columns": [...], "rows": [[...], ...]} */
json_t *rowjson_result(const result_set *rs);

#endif
