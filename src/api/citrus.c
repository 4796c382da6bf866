/* api/citrus.c — the Citrus API (docs/requirements.md, "Citrus API and
 * registration"), at its exact paths:
 *   POST /api/register        {businessId, locationId, businessType}
 *   POST /api/register/batch  {businessId, locations: [{locationId, businessType}]}
 *   GET  /api/shard/{shardKey}
 *   GET  /api/shards/health
 * A registration pins the tenant "<businessId>:<locationId>" where the ring
 * puts it now, after setting up the business type's schema template on that
 * shard; 201 the first time, 200 with the same answer after. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/handlers.h"
#include "api/shardjson.h"
#include "citrus/errors.h"
#include "core/utf8.h"
#include "provision/schema.h"
#include "dbconn/driver.h"
#include "provision/health.h"
#include "provision/service.h"

#define BATCH_MAX 100

/* Errors of a request body: a missing field is 400 invalid_argument, a
 * value of the wrong JSON type (or an unknown field, or a body that is not
 * JSON) 400 bad_json. */

/* A field that must be a valid id; replies 400 naming it. */
static const char *id_field(http_req *r, json_t *obj, const char *name, const char *where)
{
    json_t *v = json_object_get(obj, name);
    const char *s = json_string_value(v);
    if (!v) {
        http_reply_errorf(r, CITRUS_EINVAL, "%s%s: required", where, name);
        return NULL;
    }
    if (!s) {
        http_reply_errorf(r, CITRUS_EBADJSON, "%s%s: must be a string", where, name);
        return NULL;
    }
    if (!tenant_id_valid(s)) {
        http_reply_errorf(r, CITRUS_EINVAL, "%s%s: must be 1..128 characters of [A-Za-z0-9._@-]",
                          where, name);
        return NULL;
    }
    return s;
}

static const char *type_field(http_req *r, json_t *obj, const char *where)
{
    json_t *v = json_object_get(obj, "businessType");
    const char *s = json_string_value(v);
    if (!v || !s) {
        http_reply_errorf(r, v ? CITRUS_EBADJSON : CITRUS_EINVAL, "%sbusinessType: %s", where,
                          v ? "must be a string" : "required");
        return NULL;
    }
    if (!schema_template_valid(s)) {
        http_reply_errorf(r, CITRUS_EINVAL,
                          "%sbusinessType: must be 1..64 characters of "
                          "[A-Za-z0-9_-]",
                          where);
        return NULL;
    }
    return s;
}

static bool only_fields(http_req *r, json_t *obj, const char *const *allowed, const char *where)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        bool ok = false;
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = strcmp(allowed[i], k) == 0;
        if (!ok) {
            char names[128] = "";
            for (size_t i = 0, used = 0; allowed[i] && used < sizeof(names); i++)
                used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s", i ? ", " : "",
                                         allowed[i]);
            http_reply_errorf(r, CITRUS_EBADJSON, "%s%.64s: unknown field (allowed: %s)", where, k,
                              names);
            return false;
        }
    }
    return true;
}

/* The request body when it is a JSON object; else replies 400, NULL. */
static json_t *object_body(http_req *r)
{
    json_t *body = http_req_json(r);
    if (body && !json_is_object(body)) {
        json_decref(body);
        http_reply_error(r, CITRUS_EBADJSON, "body must be a JSON object", NULL);
        return NULL;
    }
    return body;
}

/* Into an answer whose "status" is the shard's lifecycle state: that
 * state as "state" too, and "status" "unreachable" (with "lastOkAt") when
 * the background probes cannot reach the shard. Reads memory only. */
static void add_health(app *a, json_t *j, const char *shard_id, int64_t epoch)
{
    json_object_set(j, "state", json_object_get(j, "status"));
    json_t *h = shardjson_health(a, shard_id, epoch, true);
    if (json_is_string(json_object_get(h, "status")) &&
        strcmp(json_string_value(json_object_get(h, "status")), "unreachable") == 0) {
        json_object_set_new(j, "status", json_string("unreachable"));
        json_object_set(j, "lastOkAt", json_object_get(h, "lastOkAt"));
    }
    json_decref(h);
}

/* {shardId, shardKey, connectionString, status, state} for a pin. */
static json_t *answer(http_req *r, app *a, const tenant_pin *p)
{
    shard s;
    bool found = registry_shard_get(a->shards->reg, p->shard_id, &s, NULL) == 0;
    char *dsn = found ? api_dsn_view(r, s.dsn, p->key) : NULL;
    json_t *j = json_pack("{s:s,s:s,s:s}", "shardId", p->shard_id, "shardKey", p->key, "status",
                          found ? shard_state_name(s.state) : "unknown");
    /* the URI form and its parts; masked unless api_dsn_view showed the DSN as is */
    shardjson_set_connection(j, found ? s.dsn : NULL, dsn && strcmp(dsn, s.dsn) == 0);
    free(dsn);
    add_health(a, j, p->shard_id, found ? s.epoch : -1);
    if (found)
        shard_clear(&s);
    return j;
}

/* The tenant key a registration names, checked against the caller's
 * scopes; replies 403 when outside. */
static int check_scope(http_req *r, const char *business_id, const char *location_id)
{
    char key[600];
    snprintf(key, sizeof(key), "%s:%s", business_id, location_id);
    return api_check_tenant(r, key);
}

/* 422 unknown_business_type, with the known types in the error's "known",
 * for the first type without a template (unless untemplated types are
 * allowed). */
static int check_types(http_req *r, app *a, const tenant_reg *regs, size_t n, bool batch)
{
    for (size_t i = 0; i < n; i++) {
        errdetail e = {0};
        json_t *known = NULL;
        int rc = svc_type_check(a->shards, regs[i].business_type, &known, &e);
        if (rc < 0) {
            char msg[sizeof(e.message) + 48];
            if (batch)
                snprintf(msg, sizeof(msg), "locations[%zu].%s", i, e.message);
            else
                snprintf(msg, sizeof(msg), "%s", e.message);
            http_reply_error(r, rc, msg, json_pack("{s:o}", "known", known ? known : json_array()));
            return rc;
        }
    }
    return 0;
}

static int do_register(http_req *r, app *a, const tenant_reg *regs, size_t n, tenant_pin *pins,
                       bool *created)
{
    errdetail e = {0};
    /* the shards' templates are checked within the request's deadline */
    svc_ensure_ctx ectx = {.svc = a->shards, .dl = app_request_deadline(a, r)};
    int rc =
        tenants_register(a->shards->reg, regs, n, svc_ensure_template, &ectx, pins, created, &e);
    if (rc < 0)
        http_reply_error(r, rc, e.message[0] ? e.message : NULL, NULL);
    return rc;
}

int api_citrus_register(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_citrus_register, ctx);
    app *a = ctx;
    if (!a->shards)
        return shardjson_reply_no_manager(r);
    bool async;
    if (!api_regq_wanted(r, &async))
        return CITRUS_EINVAL;
    json_t *body = object_body(r);
    if (!body)
        return CITRUS_EBADJSON;
    static const char *const allowed[] = {"businessId", "locationId", "businessType", NULL};
    tenant_reg reg;
    tenant_pin pin;
    bool created;
    int rc = CITRUS_EBADJSON;
    if (only_fields(r, body, allowed, "") &&
        (reg.business_id = id_field(r, body, "businessId", "")) &&
        (reg.location_id = id_field(r, body, "locationId", "")) &&
        (reg.business_type = type_field(r, body, "")) &&
        (rc = check_scope(r, reg.business_id, reg.location_id)) == 0 &&
        (rc = check_types(r, a, &reg, 1, false)) == 0) {
        if (async) { /* the same checks; then queued instead of run */
            rc = api_regq_enqueue(r, a, &reg, 1, false);
            json_decref(body);
            return rc;
        }
        rc = do_register(r, a, &reg, 1, &pin, &created);
    }
    json_decref(body);
    if (rc < 0)
        return rc;
    return http_reply_json(r, created ? 201 : 200, answer(r, a, &pin));
}

int api_citrus_register_batch(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_citrus_register_batch, ctx);
    app *a = ctx;
    if (!a->shards)
        return shardjson_reply_no_manager(r);
    bool async;
    if (!api_regq_wanted(r, &async))
        return CITRUS_EINVAL;
    json_t *body = object_body(r);
    if (!body)
        return CITRUS_EBADJSON;
    static const char *const allowed[] = {"businessId", "locations", NULL};
    static const char *const loc_allowed[] = {"locationId", "businessType", NULL};
    json_t *locs = json_object_get(body, "locations");
    size_t n = json_array_size(locs);
    const char *biz = NULL;
    int rc = CITRUS_EBADJSON;
    if (only_fields(r, body, allowed, "") && (biz = id_field(r, body, "businessId", ""))) {
        if (!locs)
            http_reply_error(r, CITRUS_EINVAL,
                             "locations: required, an array of {locationId, businessType}", NULL);
        else if (!json_is_array(locs))
            http_reply_error(r, CITRUS_EBADJSON,
                             "locations: must be an array of {locationId, businessType}", NULL);
        else if (n == 0)
            http_reply_error(r, CITRUS_EINVAL, "locations: must not be empty", NULL);
        else if (n > BATCH_MAX)
            http_reply_errorf(r, CITRUS_ETOOMANY, "locations: at most %d, got %zu", BATCH_MAX, n);
        else
            rc = 0;
    }
    tenant_reg *regs = rc == 0 ? calloc(n, sizeof(*regs)) : NULL;
    tenant_pin *pins = rc == 0 ? calloc(n, sizeof(*pins)) : NULL;
    bool *created = rc == 0 ? calloc(n, sizeof(*created)) : NULL;
    if (rc == 0 && (!regs || !pins || !created)) {
        http_reply_error(r, CITRUS_ENOMEM, NULL, NULL);
        rc = CITRUS_ENOMEM;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char where[48];
        snprintf(where, sizeof(where), "locations[%zu].", i);
        json_t *l = json_array_get(locs, i);
        regs[i].business_id = biz;
        if (!json_is_object(l)) {
            http_reply_errorf(r, CITRUS_EBADJSON, "locations[%zu]: must be an object", i);
            rc = CITRUS_EBADJSON;
        } else if (!only_fields(r, l, loc_allowed, where) ||
                   !(regs[i].location_id = id_field(r, l, "locationId", where)) ||
                   !(regs[i].business_type = type_field(r, l, where))) {
            rc = CITRUS_EBADJSON;
        } else {
            rc = check_scope(r, biz, regs[i].location_id);
        }
        for (size_t j = 0; rc == 0 && j < i; j++)
            if (strcmp(regs[j].location_id, regs[i].location_id) == 0) {
                http_reply_errorf(r, CITRUS_EINVAL,
                                  "locations[%zu].locationId: '%s' is listed twice", i,
                                  regs[i].location_id);
                rc = CITRUS_EINVAL;
            }
    }
    if (rc == 0)
        rc = check_types(r, a, regs, n, true);
    if (rc == 0 && async) { /* the same checks; then queued instead of run */
        rc = api_regq_enqueue(r, a, regs, n, true);
        free(regs);
        free(pins);
        free(created);
        json_decref(body);
        return rc;
    }
    if (rc == 0)
        rc = do_register(r, a, regs, n, pins, created);
    bool any = false;
    json_t *results = rc == 0 ? json_array() : NULL;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_t *one = answer(r, a, &pins[i]);
        json_object_set_new(one, "created", json_boolean(created[i]));
        json_array_append_new(results, one);
        any |= created[i];
    }
    json_t *out = rc == 0 ? json_pack("{s:s,s:o}", "businessId", biz, "results", results) : NULL;
    free(regs);
    free(pins);
    free(created);
    json_decref(body);
    if (rc < 0)
        return rc;
    return http_reply_json(r, any ? 201 : 200, out);
}

/* Whether key is a "<businessId>:<locationId>" GET /api/shard/{shardKey}
 * can look up; else replies 400 saying what is wrong: too long, a
 * character that is not allowed (shown as U+XXXX or its byte in hex,
 * never raw), no ':', or an empty part. */
static bool shard_key_ok(http_req *r, const char *key)
{
    size_t n = key ? strlen(key) : 0;
    if (n > TENANT_KEY_MAX) {
        http_reply_errorf(r, CITRUS_EINVAL,
                          "shardKey is too long: %zu bytes, at most %d (<businessId>:<locationId>, "
                          "each at most %d)",
                          n, TENANT_KEY_MAX, TENANT_ID_MAX);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)key[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("._:@-", c))
            continue;
        char what[32];
        uint32_t cp = 0;
        if (c > 0x20 && c < 0x7f && c != '\'' && c != '\\')
            snprintf(what, sizeof(what), "'%c'", c);
        else if (c >= 0x80 && utf8_char_len((const unsigned char *)key + i, n - i, &cp) > 0)
            snprintf(what, sizeof(what), "U+%04X", (unsigned)cp);
        else
            snprintf(what, sizeof(what), "byte 0x%02X", c);
        http_reply_errorf(r, CITRUS_EINVAL,
                          "shardKey has a character that is not allowed: %s at byte %zu (ids are "
                          "[A-Za-z0-9._@-])",
                          what, i);
        return false;
    }
    const char *colon = n ? strchr(key, ':') : NULL;
    if (!colon) {
        http_reply_error(r, CITRUS_EINVAL,
                         "shardKey has no ':': it must be <businessId>:<locationId>", NULL);
        return false;
    }
    if (strchr(colon + 1, ':')) {
        http_reply_error(r, CITRUS_EINVAL,
                         "shardKey has more than one ':': it must be <businessId>:<locationId>",
                         NULL);
        return false;
    }
    char biz[TENANT_KEY_MAX + 1];
    snprintf(biz, sizeof(biz), "%.*s", (int)(colon - key), key);
    bool biz_ok = tenant_id_valid(biz);
    if (!biz_ok || !tenant_id_valid(colon + 1)) {
        http_reply_errorf(r, CITRUS_EINVAL,
                          "shardKey: its %s must be 1..%d characters, not '.' or '..'",
                          biz_ok ? "locationId" : "businessId", TENANT_ID_MAX);
        return false;
    }
    return true;
}

int api_citrus_shard(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_citrus_shard, ctx);
    app *a = ctx;
    if (!a->shards)
        return shardjson_reply_no_manager(r);
    const char *key = http_req_param(r, "shardKey");
    if (!shard_key_ok(r, key))
        return CITRUS_EINVAL;
    tenant_pin p;
    int rc = tenants_get(a->shards->reg, key, &p);
    if (rc == CITRUS_ENOTFOUND)
        return http_reply_errorf(r, rc, "'%s' is not registered", key);
    if (rc < 0)
        return http_reply_error(r, rc, NULL, NULL);
    return http_reply_json(r, 200, answer(r, a, &p));
}

/* ---- health ---- */

int api_citrus_health(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_citrus_health, ctx);
    app *a = ctx;
    if (!a->shards)
        return shardjson_reply_no_manager(r);
    bool strict;
    if (http_req_query_bool(r, "strict", true, &strict) < 0)
        return CITRUS_EINVAL;
    shard *v;
    size_t n;
    int rc = registry_shard_list(a->shards->reg, NULL, &v, &n);
    if (rc < 0)
        return http_reply_error(r, rc, NULL, NULL);
    json_t *items = json_array(), *states = json_object();
    size_t up = 0, down = 0, unknown = 0, listed = 0;
    bool active_down = false;
    json_t *down_ids = json_array(); /* the active shards unreachable */
    for (size_t i = 0; i < n; i++) {
        if (v[i].state == SHARD_RETIRED)
            continue; /* out of service: not probed */
        listed++;
        const char *sn = shard_state_name(v[i].state);
        json_t *one = shardjson_health(a, v[i].id, v[i].epoch, true);
        const char *hs = json_string_value(json_object_get(one, "status"));
        json_object_set_new(one, "shardId", json_string(v[i].id));
        json_object_set_new(one, "state", json_string(sn));
        json_array_append_new(items, one);
        if (hs && strcmp(hs, "reachable") == 0)
            up++;
        else if (hs && strcmp(hs, "unreachable") == 0) {
            down++;
            if (v[i].state == SHARD_ACTIVE) {
                active_down = true;
                json_array_append_new(down_ids, json_string(v[i].id));
            }
        } else
            unknown++;
        json_object_set_new(states, sn,
                            json_integer(json_integer_value(json_object_get(states, sn)) + 1));
    }
    registry_shards_free(v, n);
    /* records that do not decode: listed with their error */
    size_t corrupt = shardjson_add_corrupt(a, items, "shardId");
    json_t *summary =
        json_pack("{s:I,s:I,s:I,s:I,s:o,s:I}", "total", (json_int_t)(listed + corrupt), "reachable",
                  (json_int_t)up, "unreachable", (json_int_t)down, "unknown", (json_int_t)unknown,
                  "states", states, "corrupt", (json_int_t)corrupt);
    const char *status = down || corrupt ? "degraded" : unknown ? "unknown" : "healthy";
    json_t *out = json_pack("{s:s,s:o,s:o}", "status", status, "summary", summary, "shards", items);
    if (!active_down || !strict) {
        json_decref(down_ids);
        return http_reply_json(r, 200, out);
    }
    /* the report, with the error envelope of a 503 beside it */
    json_object_set_new(out, "error",
                        json_pack("{s:s,s:s,s:o}", "code", citrus_err_code(CITRUS_ESHARDDOWN),
                                  "message", "an active shard is unreachable", "shards", down_ids));
    http_add_header(r, "Retry-After", "1");
    return http_reply_json(r, 503, out);
}
