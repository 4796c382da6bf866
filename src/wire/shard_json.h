/* wire/shard_json.h — the shard record as JSON: the form the API shows and
 * the catalog stores (the request bodies of /v1/shards are
 * api/shardbody.h's).
 *
 * Record:
 *   {"id","state","dsn","replicas":[...],"zone","weight","tags":{k:v},
 *    "epoch","created_at","updated_at","template","error",
 *    "history":[{"at","from","to","reason","actor"}]}
 * Times are RFC 3339 UTC with milliseconds ("2026-11-22T07:40:00.123Z");
 * absent optional strings are null. DSNs are shown as stored: callers that
 * answer clients redact them (dsn_redact) themselves.
 *
 * Decoders return 0, or an error with a message in e that names the
 * field: CITRUS_EBADJSON for wrong types and other shape errors,
 * CITRUS_ETOOMANY for too many items, CITRUS_ENOMEM; shard_from_json
 * reports every bad input as CITRUS_EBADJSON. */
#ifndef CITRUS_WIRE_SHARD_JSON_H
#define CITRUS_WIRE_SHARD_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/errdetail.h"
#include "core/shard.h"

/* The record; "history" only when with_history. NULL on ENOMEM. */
json_t *shard_to_json(const shard *s, bool with_history);

/* The inverse, for the catalog's stored form. out is initialized here (and
 * cleared again on error). id, state, epoch, created_at and updated_at are
 * required; the rest may be absent or null. Wrong types, a bad id or state
 * name and a weight outside (0, 100] are errors; members it does not know
 * are ignored, so a record written by a newer version still loads. A
 * history longer than SHARD_HISTORY_MAX keeps its newest events. */
int shard_from_json(json_t *j, shard *out, errdetail *e);

/* RFC 3339 UTC with milliseconds; buf needs 32 bytes. */
void shard_json_time(int64_t ms, char *buf, size_t len);
/* Parses "YYYY-MM-DDTHH:MM:SS[.fraction]Z"; 0 or CITRUS_EINVAL. */
int shard_json_parse_time(const char *s, int64_t *ms);

/* The record's list members, decoded, for whoever reads shard JSON (the
 * record here, the API's request bodies in api/shardbody.c): an array of
 * at most SHARD_MAX_REPLICAS strings (name names it in errors), and an
 * object of string values. check (may be NULL) sees each item once its
 * type is right, before it is kept; its error (e set) is returned as is.
 * On error e says why, *out is NULL and nothing is left allocated; else
 * free with shard_strings_free / shard_tags_free. */
typedef int (*shard_json_string_check)(const char *name, size_t i, const char *value, errdetail *e);
typedef int (*shard_json_tag_check)(const char *key, const char *value, errdetail *e);
int shard_json_strings(json_t *a, const char *name, shard_json_string_check check, char ***out,
                       size_t *n, errdetail *e);
int shard_json_tags(json_t *o, shard_json_tag_check check, shard_tag **out, size_t *n,
                    errdetail *e);

#endif
