/* api/lease.c — POST /v1/leases, POST /v1/leases/{id}/keepalive,
 * DELETE /v1/leases/{id}. */
#include <errno.h>
#include <stdlib.h>

#include "api/app.h"
#include "api/handlers.h"
#include "api/kvreq.h"
#include "citrus/errors.h"

#define LEASE_MAX_TTL (365LL * 24 * 3600)

static int lease_id(http_req *r, int64_t *id)
{
    const char *s = http_req_param(r, "id");
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v <= 0) {
        http_reply_error(r, CITRUS_EINVAL, "lease id must be a positive integer", NULL);
        return CITRUS_EINVAL;
    }
    *id = v;
    return 0;
}

int api_lease_grant(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_lease_grant, ctx); /* a store call that waits for a commit or etcd */
    app *a = ctx;
    json_t *body = http_req_json(r);
    if (!body)
        return CITRUS_EBADJSON;
    json_t *ttl = json_object_get(body, "ttl");
    if (!json_is_object(body) || !json_is_integer(ttl) || json_integer_value(ttl) < 1 ||
        json_integer_value(ttl) > LEASE_MAX_TTL) {
        json_decref(body);
        return http_reply_error(r, CITRUS_EBADJSON,
                                "body must be {\"ttl\": seconds} with 1 <= ttl <= 31536000", NULL);
    }
    int64_t id, granted;
    int rc = store_lease_grant(a->st, json_integer_value(ttl), &id, &granted);
    json_decref(body);
    if (rc < 0)
        return kvreq_reply_store_error(r, rc);
    return http_reply_json(
        r, 200, json_pack("{s:I,s:I}", "id", (json_int_t)id, "ttl", (json_int_t)granted));
}

int api_lease_keepalive(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_lease_keepalive, ctx); /* a store call that waits for a commit or etcd */
    app *a = ctx;
    int64_t id, ttl;
    if (lease_id(r, &id) < 0)
        return CITRUS_EINVAL;
    int rc = store_lease_keepalive(a->st, id, &ttl);
    if (rc < 0)
        return kvreq_reply_store_error(r, rc);
    return http_reply_json(r, 200,
                           json_pack("{s:I,s:I}", "id", (json_int_t)id, "ttl", (json_int_t)ttl));
}

int api_lease_revoke(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_lease_revoke, ctx); /* a store call that waits for a commit or etcd */
    app *a = ctx;
    int64_t id;
    if (lease_id(r, &id) < 0)
        return CITRUS_EINVAL;
    int rc = store_lease_revoke(a->st, id);
    if (rc < 0)
        return kvreq_reply_store_error(r, rc);
    return http_reply_json(r, 200, json_pack("{s:I,s:b}", "id", (json_int_t)id, "revoked", 1));
}
