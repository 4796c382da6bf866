/* api/shardjson.h — the JSON the shard, tenant and routing endpoints
 * answer with, shared by their handlers. */
#ifndef CITRUS_API_SHARDJSON_H
#define CITRUS_API_SHARDJSON_H

#include <jansson.h>
#include <stdbool.h>

#include "api/app.h"
#include "registry/registry.h"
#include "registry/tenants.h"

/* The record (shard_json) plus "tokens" (how many it owns in the current
 * ring) and "tenants" (how many are pinned to it). */
json_t *shardjson_full(app *a, const shard *s, bool with_history);
/* The n records as shardjson_full gives them (without history), as one
 * array, the ring read once for all; NULL when out of memory. */
json_t *shardjson_list(app *a, const shard *v, size_t n);
/* Appends to items one {"<id_name>": id, "key", "error": "corrupt record:
 * ..."} per shard record the last listing could not decode
 * (registry_corrupt), and returns how many. */
size_t shardjson_add_corrupt(app *a, json_t *items, const char *id_name);
/* Masks the password of a shard record's dsn and replicas in place (for a
 * caller that may not see credentials: api_dsn_view). */
void shardjson_redact(json_t *shard_obj);

/* Sets "connectionString" and "connection" of o from a shard's dsn
 * (nothing when dsn is NULL): the URI form a driver takes verbatim
 * (dsn_to_uri; the stored text when it does not parse) and its parts,
 *   {"driver":"postgresql","host","port","database","user","password",
 *    "options":{...}[,"hosts":[{"host","port"},...]]}
 *   {"driver":"sqlite","path":"/absolute/path"}.
 * reveal false: the URI's password is "***" and the object has no
 * "password" but "passwordRedacted": true. */
void shardjson_set_connection(json_t *o, const char *dsn, bool reveal);

/* What a change did to the ring: {"changed","version","tokens_before",
 * "tokens_after","tenants_affected","ranges":[...],"ranges_total"}. */
json_t *shardjson_change(const reg_result *res);

/* A pin: {"key","shard_id","hash","token","pinned_at","business_type"}. */
json_t *shardjson_pin(const tenant_pin *p);

/* What the background probes (a->health) know of shard id (at record
 * epoch: shard_health_get's; -1 any):
 * {status: unknown|reachable|unreachable, reachable, lastOkAt (RFC 3339,
 * null: never), lastProbeAt, latencyMs (when reachable), error (when not,
 * redacted), consecutiveFailures}; the names in snake_case (last_ok_at...)
 * when camel is false (the /v1 records). Unknown when there is no monitor. */
json_t *shardjson_health(app *a, const char *id, int64_t epoch, bool camel);

/* Replies 503 unavailable: this node runs no shard manager (a->shards is
 * NULL). Returns what http_reply_error does. */
int shardjson_reply_no_manager(http_req *r);

#endif
