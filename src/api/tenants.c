/* api/tenants.c — /v1/tenants: the tenant directory (pins that take
 * precedence over the ring). All catalog calls: on the work pool. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/handlers.h"
#include "api/shardjson.h"
#include "citrus/errors.h"
#include "provision/service.h"

#define LIST_DEFAULT 1000
#define LIST_MAX 10000

/* Replies and returns an error when the request cannot go on. */
static int check(http_req *r, app *a, const char *key)
{
    if (!a->shards) {
        shardjson_reply_no_manager(r);
        return CITRUS_EUNAVAILABLE;
    }
    if (key && !tenant_key_valid(key)) {
        http_reply_error(r, CITRUS_EINVAL,
                         "tenant key must be 1..256 characters of [A-Za-z0-9._:@-]", NULL);
        return CITRUS_EINVAL;
    }
    return 0;
}

int api_tenants_list(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_tenants_list, ctx);
    app *a = ctx;
    if (check(r, a, NULL) < 0)
        return CITRUS_EUNAVAILABLE;
    const char *shard_id = http_req_query(r, "shard");
    const char *after = http_req_query(r, "after");
    int64_t limit;
    if (http_req_query_int(r, "limit", LIST_DEFAULT, &limit) < 0)
        return CITRUS_EINVAL;
    if (limit < 1 || limit > LIST_MAX)
        return http_reply_errorf(r, CITRUS_EINVAL, "limit must be 1..%d", LIST_MAX);
    if (shard_id && !shard_id_valid(shard_id))
        return http_reply_error(r, CITRUS_EINVAL, "shard: not a valid shard id", NULL);
    if (after && !tenant_key_valid(after))
        return http_reply_error(r, CITRUS_EINVAL, "after: not a valid tenant key", NULL);
    tenant_pin *v;
    size_t n;
    bool more;
    int rc = tenants_list(a->shards->reg, shard_id, after, (size_t)limit, &v, &n, &more);
    if (rc < 0)
        return http_reply_error(r, rc, NULL, NULL);
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, shardjson_pin(&v[i]));
    free(v);
    return http_reply_json(r, 200, json_pack("{s:o,s:b}", "tenants", items, "more", more));
}

int api_tenants_get(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_tenants_get, ctx);
    app *a = ctx;
    const char *key = http_req_param(r, "key");
    if (check(r, a, key) < 0)
        return CITRUS_EINVAL;
    tenant_pin p;
    int rc = tenants_get(a->shards->reg, key, &p);
    if (rc == CITRUS_ENOTFOUND)
        return http_reply_errorf(r, rc, "tenant '%s' is not registered", key);
    if (rc < 0)
        return http_reply_error(r, rc, NULL, NULL);
    return http_reply_json(r, 200, shardjson_pin(&p));
}

int api_tenants_put(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_tenants_put, ctx);
    app *a = ctx;
    const char *key = http_req_param(r, "key");
    if (check(r, a, key) < 0)
        return CITRUS_EINVAL;
    bool force;
    if (http_req_query_bool(r, "force", false, &force) < 0)
        return CITRUS_EINVAL;
    json_t *body = http_req_json(r);
    if (!body)
        return CITRUS_EBADJSON;
    const char *sid = json_string_value(json_object_get(body, "shard_id"));
    if (!json_is_object(body) || !sid || json_object_size(body) != 1) {
        json_decref(body);
        return http_reply_error(r, CITRUS_EBADJSON, "body must be {\"shard_id\": \"<id>\"}", NULL);
    }
    if (!shard_id_valid(sid)) {
        json_decref(body);
        return http_reply_error(r, CITRUS_EINVAL, "shard_id: not a valid shard id", NULL);
    }
    tenant_pin p;
    bool created;
    errdetail e = {0};
    int rc = tenants_put(a->shards->reg, key, sid, force ? REG_FORCE : 0, &p, &created, &e);
    json_decref(body);
    if (rc < 0)
        return http_reply_error(r, rc, e.message[0] ? e.message : NULL, NULL);
    return http_reply_json(r, created ? 201 : 200, shardjson_pin(&p));
}

int api_tenants_delete(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_tenants_delete, ctx);
    app *a = ctx;
    const char *key = http_req_param(r, "key");
    if (check(r, a, key) < 0)
        return CITRUS_EINVAL;
    int rc = tenants_delete(a->shards->reg, key);
    if (rc == CITRUS_ENOTFOUND)
        return http_reply_errorf(r, rc, "tenant '%s' is not registered", key);
    if (rc < 0)
        return http_reply_error(r, rc, NULL, NULL);
    return http_reply_json(r, 200, json_pack("{s:s,s:b}", "key", key, "deleted", 1));
}
