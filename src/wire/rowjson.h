/* wire/rowjson.h — SQL values to and from the router's JSON: parameters are
 * JSON scalars (integer -> INT, real -> REAL, string -> TEXT, true/false ->
 * BOOL, null -> NULL, {"$bytes": "<base64>"} -> BLOB); result cells come
 * back the same way, a NUMERIC (exact decimal) as a JSON string of its
 * digits ("12.50"), and 64-bit integers as rowjson_int64 says.
 *
 * A result carries "column_types", one per column, from its non-NULL
 * values: "integer" (JSON numbers), "int64-string" (integers sent as JSON
 * strings of their digits), "real", "numeric" (exact decimals, every value
 * a JSON string of its digits, "12.50"; integers among them too), "text",
 * "boolean", "bytes", "null" (no non-NULL value) or "mixed" (SQLite may
 * give one column several kinds; its integers follow the int64 rule one
 * value at a time). A NUMERIC written without a point that fits in 64 bits
 * (PostgreSQL's sum(bigint), "2240") counts as an integer, so a sum reads
 * the same from SQLite and PostgreSQL shards; past 64 bits it stays a
 * numeric string. */
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

/* How INT values are sent: NUMBER keeps them JSON numbers while a
 * JavaScript double holds them exactly (|i| <= 2^53 - 1); a column with one
 * past that is sent as strings, all of it, typed "int64-string". STRING
 * sends every integer as a string ("int64-string"). */
typedef enum { ROWJSON_INT64_NUMBER, ROWJSON_INT64_STRING } rowjson_int64;

/* 0 and *out for "number" or "string"; CITRUS_EINVAL otherwise. */
int rowjson_int64_parse(const char *name, rowjson_int64 *out);

#define ROWJSON_SAFE_INT 9007199254740991LL /* 2^53 - 1 */

json_t *rowjson_value(const value *v);
/* {"columns": [...], "column_types": [...], "rows": [[...], ...]} */
json_t *rowjson_result(const result_set *rs, rowjson_int64 mode);

#endif
