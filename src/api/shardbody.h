/* api/shardbody.h — the request bodies of /v1/shards, checked field by
 * field so that a client gets an error naming the field and saying what
 * is wrong. The stored record is wire/shard_json.h's; what a body may hold
 * (limits on zones and tags, DSN checks, which fields exist) is the API's
 * business, so it lives here and a change to it never touches the stored
 * format.
 *
 * Parsers return 0, or an error (e says it, naming the field): CITRUS_EBADJSON for wrong types,
 * unknown fields and other shape errors, CITRUS_EINVAL for values out of range (a bad id, DSN,
 * weight,
 * ...), CITRUS_ETOOMANY for too many replicas or tags, CITRUS_ENOMEM. */
#ifndef CITRUS_API_SHARDBODY_H
#define CITRUS_API_SHARDBODY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/errdetail.h"
#include "core/shard.h"
#include "provision/service.h"

#define SHARDBODY_ZONE_MAX 64       /* characters */
#define SHARDBODY_TAG_KEY_MAX 64    /* characters, at least 1 */
#define SHARDBODY_TAG_VALUE_MAX 256 /* characters */

/* A POST /v1/shards body into a shard_spec (provision/service.h):
 *   {"id"?, "dsn"?, "replicas"?, "zone"?, "weight"?, "tags"?, "template"?,
 *    "provision"?: {"template"?, "params"?}}
 * Exactly one of dsn (register an existing database) and provision (have
 * the provisioner create one) is given; replicas go with dsn only. null
 * counts as absent. The template may be named at the top level or inside
 * provision (both: they must agree). out is owned by the caller: release
 * it with shardbody_spec_clear (done here on error). */
int shardbody_spec(json_t *body, shard_spec *out, errdetail *e);
void shardbody_spec_clear(shard_spec *s);

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

/* out is the caller's: release it with shardbody_patch_clear (done here on
 * error). */
int shardbody_patch(json_t *body, shard_patch *out, errdetail *e);
void shardbody_patch_clear(shard_patch *p);

/* Applies p to s (copying what it takes), bumping epoch and setting
 * updated_ms. 0 or CITRUS_ENOMEM (s unchanged). */
int shardbody_patch_apply(shard *s, const shard_patch *p, int64_t now_ms);

#endif
