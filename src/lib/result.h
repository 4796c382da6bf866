/* lib/result.h — citrus_result: a router answer decoded into core/value.h
 * cells (the JSON value forms of wire/rowjson.h). */
#ifndef CITRUS_LIB_RESULT_H
#define CITRUS_LIB_RESULT_H

#include <jansson.h>

#include "citrus/citrus.h"

/* Decodes one answer ({columns, rows, changes, truncated, ring_version,
 * shard_id?}); shard_id and ring_version fill in what the answer lacks
 * (a /v1/tx statement's). NULL with err filled when it does not decode. */
citrus_result *result_from_json(json_t *j, const char *shard_id, int64_t ring_version,
                                citrus_error *err);

#endif
