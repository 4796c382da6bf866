/* wire/shard_json.h — the shard's JSON forms: the record as the API shows
 * it and the catalog stores it, the POST /v1/shards body (a spec) and the
 * PATCH /v1/shards/{id} body.
 *
 * Record:
 *   {"id","state","dsn","replicas":[...],"zone","weight","tags":{k:v},
 *    "epoch","created_at","updated_at","template","error",
 *    "history":[{"at","from","to","reason","actor"}]}
 * Times are RFC 3339 UTC with milliseconds ("2026-11-22T07:40:00.123Z");
 * absent optional strings are null. DSNs are shown as stored: callers that
 * answer clients redact them (dsn_redact) themselves.
 *
 * Parsers return 0, or an error with a message in err that names the field:
 * CITRUS_EBADJSON for wrong types, unknown fields and other shape errors,
 * CITRUS_EINVAL for values out of range (a bad id, DSN, weight, ...),
 * CITRUS_ETOOMANY for too many replicas or tags, CITRUS_ENOMEM.
 * shard_from_json reports every bad input as CITRUS_EBADJSON. */
#ifndef CITRUS_WIRE_SHARD_JSON_H
#define CITRUS_WIRE_SHARD_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/shard.h"

#define SHARD_ZONE_MAX 64       /* characters */
#define SHARD_TAG_KEY_MAX 64    /* characters, at least 1 */
#define SHARD_TAG_VALUE_MAX 256 /* characters */
#define SHARD_WEIGHT_MAX 100.0

/* The record; "history" only when with_history. NULL on ENOMEM. */
json_t *shard_to_json(const shard *s, bool with_history);

/* The inverse, for the catalog's stored form. out is initialized here (and
 * cleared again on error). id, state, epoch, created_at and updated_at are
 * required; the rest may be absent or null. Wrong types, a bad id or state
 * name and a weight outside (0, 100] are errors; members it does not know
 * are ignored, so a record written by a newer version still loads. A
 * history longer than SHARD_HISTORY_MAX keeps its newest events. */
int shard_from_json(json_t *j, shard *out, char *err, size_t errlen);

/* RFC 3339 UTC with milliseconds; buf needs 32 bytes. */
void shard_json_time(int64_t ms, char *buf, size_t len);
/* Parses "YYYY-MM-DDTHH:MM:SS[.fraction]Z"; 0 or CITRUS_EINVAL. */
int shard_json_parse_time(const char *s, int64_t *ms);

/* A POST /v1/shards body:
 *   {"id"?, "dsn"?, "replicas"?, "zone"?, "weight"?, "tags"?, "template"?,
 *    "provision"?: {"template"?, "params"?}}
 * Exactly one of dsn (register an existing database) and provision (have
 * the provisioner create one) is given; replicas go with dsn only. null
 * counts as absent. The template may be named at the top level or inside
 * provision (both: they must agree). */
typedef struct shard_spec {
    char id[SHARD_ID_MAX + 1]; /* "" when the server is to pick one */
    char *dsn;                 /* NULL when provisioning */
    char **replicas;
    size_t nreplicas;
    char *zone;    /* may be NULL */
    double weight; /* 1 when not given */
    shard_tag *tags;
    size_t ntags;
    bool provision;
    char *template_name; /* may be NULL */
    json_t *params;      /* provision.params, an object; owned; may be NULL */
} shard_spec;

int shard_spec_from_json(json_t *body, shard_spec *out, char *err, size_t errlen);
void shard_spec_clear(shard_spec *s);

/* A PATCH /v1/shards/{id} body: {"weight"?, "zone"?, "tags"?}, at least one
 * of them. tags replaces the whole set ({} removes them all); "zone": null
 * removes the zone. */
typedef struct shard_patch {
    bool has_weight, has_zone, has_tags;
    double weight;
    char *zone; /* NULL: remove */
    shard_tag *tags;
    size_t ntags;
} shard_patch;

int shard_patch_from_json(json_t *body, shard_patch *out, char *err, size_t errlen);
void shard_patch_clear(shard_patch *p);

/* Applies p to s, bumping epoch and setting updated_ms. 0 or CITRUS_ENOMEM
 * (s unchanged). */
int shard_patch_apply(shard *s, const shard_patch *p, int64_t now_ms);

#endif
