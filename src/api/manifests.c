/* api/manifests.c — enrollment manifests (seed 000's enrollment_manifests,
 * records/ledger.h), what the enrollment ingest worker reads:
 *   PUT /v1/manifests/{id} (sm-operator, audited as manifest.put): a JSON
 *       object with a string "tenant_key" (the tenant the enrollment is
 *       for, routed by the worker) and anything else the enrollment
 *       carries; 201 when created, 200 when replaced, with its version;
 *   GET /v1/manifests/{id} (reader): {"id", "version", "updated", "manifest"}. */
#include <string.h>

#include "api/app.h"
#include "api/handlers.h"
#include "citrus/errors.h"
#include "records/ledger.h"
#include "registry/tenants.h"
#include "sys/clock.h"
#include "wire/shard_json.h"

static json_t *answer(const char *id, int64_t version, int64_t updated_ms, json_t *manifest)
{
    char when[40];
    shard_json_time(updated_ms, when, sizeof(when));
    return json_pack("{s:s,s:I,s:s,s:o}", "id", id, "version", (json_int_t)version, "updated", when,
                     "manifest", manifest);
}

int api_manifests_put(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_manifests_put, ctx);
    app *a = ctx;
    if (!a->rec)
        return http_reply_error(r, CITRUS_EUNAVAILABLE, "this node has no records store", NULL);
    const char *id = http_req_param(r, "id");
    json_t *body = http_req_json(r);
    if (!body)
        return CITRUS_EBADJSON;
    const char *tenant = json_string_value(json_object_get(body, "tenant_key"));
    if (!json_is_object(body) || !tenant) {
        json_decref(body);
        return http_reply_error(r, CITRUS_EBADJSON,
                                "body must be a JSON object with a string \"tenant_key\"", NULL);
    }
    if (!tenant_key_valid(tenant)) {
        json_decref(body);
        return http_reply_error(r, CITRUS_EINVAL,
                                "tenant_key: 1..256 bytes of A-Z a-z 0-9 . _ : @ -", NULL);
    }
    char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text) {
        json_decref(body);
        return http_reply_error(r, CITRUS_ENOMEM, NULL, NULL);
    }
    bool created = false;
    int64_t version = 0, now = clock_wall_ms(NULL);
    errdetail e = {0};
    int rc = records_manifest_put(a->rec, id, text, now, &created, &version, &e);
    free(text);
    if (rc < 0) {
        json_decref(body);
        return http_reply_error(r, rc, e.message[0] ? e.message : NULL, NULL);
    }
    return http_reply_json(r, created ? 201 : 200, answer(id, version, now, body));
}

int api_manifests_get(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_manifests_get, ctx);
    app *a = ctx;
    if (!a->rec)
        return http_reply_error(r, CITRUS_EUNAVAILABLE, "this node has no records store", NULL);
    const char *id = http_req_param(r, "id");
    manifest_row m;
    errdetail e = {0};
    int rc = records_manifest_get(a->rec, id, &m, &e);
    if (rc < 0)
        return http_reply_error(r, rc, e.message[0] ? e.message : NULL, NULL);
    json_t *doc = json_loads(m.body, 0, NULL);
    free(m.body);
    if (!doc)
        return http_reply_error(r, CITRUS_EINTERNAL, "the stored manifest is not JSON", NULL);
    return http_reply_json(r, 200, answer(id, m.version, m.updated_ms, doc));
}
