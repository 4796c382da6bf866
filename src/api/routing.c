/* api/routing.c — GET /v1/route/{key} and POST /v1/route: which shard a
 * key goes to (its pin in the tenant directory, else the ring), with the
 * shard's connection details. Reads come from the node's copy when it may
 * answer them (catalog/reader.h: reader_routing_read), so on the hot path
 * nothing leaves the HTTP thread; when the copy cannot answer, the handler
 * moves to the work pool. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/handlers.h"
#include "api/shardjson.h"
#include "citrus/errors.h"
#include "core/dsn.h"
#include "provision/service.h"

#define ROUTE_BATCH_MAX 10000
#define ROUTE_KEY_MAX 1024

static bool key_ok(const char *key)
{
    return key && *key && strlen(key) <= ROUTE_KEY_MAX;
}

/* Shard records read once per batch. */
typedef struct shard_memo {
    shard *v;
    size_t n, cap;
} shard_memo;

static const shard *memo_get(app *a, shard_memo *m, const char *id)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->v[i].id, id) == 0)
            return &m->v[i];
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 8;
        shard *v = realloc(m->v, cap * sizeof(*v));
        if (!v)
            return NULL;
        m->v = v;
        m->cap = cap;
    }
    if (registry_shard_read(a->shards->reg, id, &m->v[m->n]) < 0)
        return NULL;
    return &m->v[m->n++];
}

static void memo_free(shard_memo *m)
{
    registry_shards_free(m->v, m->n);
}

/* One key's route; its DSNs with their passwords masked, for every caller
 * (credentials are GET /api/shard/{key}'s, to a tenant in scope). */
static json_t *answer_json(http_req *r, const char *key, const route_answer *ra, const shard *s)
{
    char tok[24];
    snprintf(tok, sizeof(tok), "%" PRIu64, ra->token);
    json_t *reps = json_array();
    for (size_t i = 0; s && i < s->nreplicas; i++) {
        char *rep = dsn_redact(s->replicas[i]);
        json_array_append_new(reps, json_string(rep ? rep : ""));
        free(rep);
    }
    char *dsn = s ? dsn_redact(s->dsn) : NULL;
    json_t *j =
        json_pack("{s:s,s:s,s:s,s:b,s:s,s:s?,s:o,s:s?,s:I}", "key", key, "shard_id", ra->shard_id,
                  "source", ra->pinned ? "directory" : "ring", "registered", ra->pinned, "token",
                  tok, "dsn", dsn, "replicas", reps, "state", s ? shard_state_name(s->state) : NULL,
                  "ring_version", (json_int_t)ra->ring_version);
    free(dsn);
    return j;
}

/* Routes keys[0..n) into an array of answers; replies with errors itself. */
static int route_keys(http_req *r, app *a, const char *const *keys, size_t n, json_t **out)
{
    const ring *rg;
    int64_t version;
    int rc = registry_ring(a->shards->reg, &rg, &version, NULL);
    if (rc < 0)
        return http_reply_error(r, rc, NULL, NULL), rc;
    shard_memo memo = {0};
    json_t *arr = json_array();
    for (size_t i = 0; rc == 0 && i < n; i++) {
        route_answer ra;
        rc = tenants_route(a->shards->reg, rg, version, keys[i], &ra);
        if (rc == CITRUS_EUNAVAILABLE) {
            http_reply_error(r, rc, "no shard owns any token yet: add an active shard", NULL);
            break;
        }
        if (rc < 0) {
            http_reply_error(r, rc, NULL, NULL);
            break;
        }
        json_array_append_new(arr, answer_json(r, keys[i], &ra, memo_get(a, &memo, ra.shard_id)));
    }
    memo_free(&memo);
    registry_ring_release(a->shards->reg, rg);
    if (rc < 0) {
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return 0;
}

int api_route_get(http_req *r, void *ctx)
{
    app *a = ctx;
    if (!a->shards)
        return shardjson_reply_no_manager(r);
    if (!http_offloaded(r) && reader_routing_blocks(a->rd))
        return http_offload(r, api_route_get, ctx);
    const char *key = http_req_param(r, "key");
    if (!key_ok(key))
        return http_reply_errorf(r, CITRUS_EINVAL, "key must be 1..%d bytes", ROUTE_KEY_MAX);
    json_t *arr;
    int rc = route_keys(r, a, &key, 1, &arr);
    if (rc < 0)
        return rc;
    json_t *one = json_incref(json_array_get(arr, 0));
    json_decref(arr);
    return http_reply_json(r, 200, one);
}

int api_route_batch(http_req *r, void *ctx)
{
    app *a = ctx;
    if (!a->shards)
        return shardjson_reply_no_manager(r);
    if (!http_offloaded(r) && reader_routing_blocks(a->rd))
        return http_offload(r, api_route_batch, ctx);
    json_t *body = http_req_json(r);
    if (!body)
        return CITRUS_EBADJSON;
    json_t *keys = json_object_get(body, "keys");
    size_t n = json_array_size(keys);
    if (!json_is_object(body) || !json_is_array(keys) || n == 0) {
        json_decref(body);
        return http_reply_error(r, CITRUS_EBADJSON,
                                "body must be {\"keys\": [\"key\", ...]} with at least one key",
                                NULL);
    }
    if (n > ROUTE_BATCH_MAX) {
        json_decref(body);
        return http_reply_errorf(r, CITRUS_ETOOMANY, "keys: at most %d per request, got %zu",
                                 ROUTE_BATCH_MAX, n);
    }
    const char **v = malloc(n * sizeof(*v));
    if (!v) {
        json_decref(body);
        return http_reply_error(r, CITRUS_ENOMEM, NULL, NULL);
    }
    for (size_t i = 0; i < n; i++) {
        v[i] = json_string_value(json_array_get(keys, i));
        if (!key_ok(v[i])) {
            free(v);
            json_decref(body);
            return http_reply_errorf(
                r, CITRUS_EBADJSON, "keys[%zu]: must be a string of 1..%d bytes", i, ROUTE_KEY_MAX);
        }
        /* readers route any key; a tenant only its own */
        if (!auth_level_allows(api_principal(r)->roles, AUTH_READER) &&
            api_check_tenant(r, v[i]) < 0) {
            free(v);
            json_decref(body);
            return CITRUS_EFORBIDDEN;
        }
    }
    json_t *arr;
    int rc = route_keys(r, a, v, n, &arr);
    free(v);
    json_decref(body);
    if (rc < 0)
        return rc;
    json_int_t version =
        json_integer_value(json_object_get(json_array_get(arr, 0), "ring_version"));
    return http_reply_json(r, 200, json_pack("{s:I,s:o}", "ring_version", version, "routes", arr));
}
