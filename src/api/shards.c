/* api/shards.c — /v1/shards: register, provision, list, show, change,
 * drain/activate/retire/read-only/retry, delete. Every handler here reads
 * or writes the catalog synchronously, so each runs on the work pool. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/audit.h"
#include "api/handlers.h"
#include "api/shardbody.h"
#include "api/shardjson.h"
#include "citrus/errors.h"
#include "provision/health.h"
#include "provision/service.h"

/* A failed call on shard id: not_found names it; otherwise err when it
 * says something. extra (reference stolen) goes with the latter. */
static int reply_failed(http_req *r, int rc, const char *id, const char *err, json_t *extra)
{
    if (rc == CITRUS_ENOTFOUND) {
        json_decref(extra);
        return http_reply_errorf(r, rc, "shard '%s' not found", id);
    }
    return http_reply_error(r, rc, err && err[0] ? err : NULL, extra);
}

/* ?force=true and ?dry_run=true as registry flags; replies 400 on junk. */
static int flags_of(http_req *r, unsigned *flags)
{
    bool force, dry;
    if (http_req_query_bool(r, "force", false, &force) < 0 ||
        http_req_query_bool(r, "dry_run", false, &dry) < 0)
        return CITRUS_EINVAL;
    *flags = (force ? REG_FORCE : 0) | (dry ? REG_DRY_RUN : 0);
    return 0;
}

/* 200 with the shard as written and what the change did to the ring. */
static int reply_changed(http_req *r, app *a, shard *s, reg_result *res, bool history, bool dry_run)
{
    if (a->health && !dry_run) /* the record changed: probed again now */
        shard_health_kick(a->health);
    json_t *out = shardjson_full(a, s, history);
    shardjson_redact(out); /* a change shows no credentials: GET ?reveal=true does */
    json_object_set_new(out, "ring", shardjson_change(res));
    if (dry_run)
        json_object_set_new(out, "dry_run", json_true());
    shard_clear(s);
    reg_result_clear(res);
    return http_reply_json(r, 200, out);
}

int api_shards_create(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_shards_create, ctx);
    app *a = ctx;
    if (!a->shards)
        return shardjson_reply_no_manager(r);
    bool verify, allow_superuser;
    if (http_req_query_bool(r, "verify", true, &verify) < 0 ||
        http_req_query_bool(r, "allow_superuser", false, &allow_superuser) < 0)
        return CITRUS_EINVAL;
    const principal *who = api_principal(r);
    if (allow_superuser && !(who->roles & AUTH_ADMIN))
        return api_forbid(r, "%s may not allow a superuser DSN: that needs sm-admin", who->name);
    json_t *body = http_req_json(r);
    if (!body)
        return CITRUS_EBADJSON;
    shard_spec spec;
    errdetail e;
    int rc = shardbody_spec(body, &spec, &e);
    json_decref(body);
    if (rc < 0)
        return http_reply_error(r, rc, e.message, NULL);
    errdetail_clear(&e);
    spec.allow_superuser = allow_superuser;
    shard s;
    reg_result res = {0};
    bool provision = spec.provision;
    if (provision)
        rc = svc_provision_shard(a->shards, &spec, "api", &s, &e);
    else
        rc = svc_register_shard(a->shards, &spec, verify, "api", &s, &res, &e);
    shardbody_spec_clear(&spec);
    if (allow_superuser && !provision) /* the exception itself, whatever came of it */
        api_audit_now(r, "shard.create.allow_superuser", rc == 0 ? s.id : NULL,
                      rc == 0 ? 201 : citrus_err_http_status(rc));
    if (rc < 0) {
        reg_result_clear(&res);
        if (rc == CITRUS_EUNREACHABLE && !(api_principal(r)->roles & AUTH_ADMIN))
            return http_reply_error(r, rc, "unreachable: cannot connect to the database", NULL);
        return http_reply_error(r, rc, e.message[0] ? e.message : NULL, NULL);
    }
    if (a->health)
        shard_health_kick(a->health); /* probed now, not at the next round */
    json_t *out = shardjson_full(a, &s, true);
    shardjson_redact(out);
    if (!provision)
        json_object_set_new(out, "ring", shardjson_change(&res));
    char loc[128];
    snprintf(loc, sizeof(loc), "/v1/shards/%s", s.id);
    shard_clear(&s);
    reg_result_clear(&res);
    http_add_header(r, "Location", loc);
    return http_reply_json(r, provision ? 202 : 201, out);
}

int api_shards_list(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_shards_list, ctx);
    app *a = ctx;
    if (!a->shards)
        return shardjson_reply_no_manager(r);
    const char *st = http_req_query(r, "state");
    shard_state filter;
    if (st && shard_state_parse(st, &filter) < 0)
        return http_reply_errorf(
            r, CITRUS_EINVAL,
            "state must be one of pending, provisioning, initializing, active, "
            "read_only, draining, drained, retired, failed");
    bool reveal;
    int rc = api_reveal_query(r, &reveal);
    if (rc < 0)
        return rc;
    shard *v;
    size_t n;
    rc = registry_shard_list(a->shards->reg, st ? &filter : NULL, &v, &n);
    if (rc < 0)
        return http_reply_error(r, rc, NULL, NULL);
    json_t *items = shardjson_list(a, v, n);
    registry_shards_free(v, n);
    if (!items)
        return http_reply_error(r, CITRUS_ENOMEM, NULL, NULL);
    if (!st) /* a record that does not decode: listed with its error (no state to filter by) */
        n += shardjson_add_corrupt(a, items, "id");
    if (!reveal) {
        for (size_t i = 0; i < json_array_size(items); i++)
            shardjson_redact(json_array_get(items, i));
    } else {
        api_note_reveal(r, "");
    }
    return http_reply_json(r, 200, json_pack("{s:o,s:I}", "shards", items, "count", (json_int_t)n));
}

int api_shards_get(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_shards_get, ctx);
    app *a = ctx;
    if (!a->shards)
        return shardjson_reply_no_manager(r);
    const char *id = http_req_param(r, "id");
    bool reveal;
    int rc = api_reveal_query(r, &reveal);
    if (rc < 0)
        return rc;
    shard s;
    rc = registry_shard_get(a->shards->reg, id, &s, NULL);
    if (rc < 0)
        return reply_failed(r, rc, id, NULL, NULL);
    json_t *out = shardjson_full(a, &s, true);
    shard_clear(&s);
    if (!reveal)
        shardjson_redact(out);
    else
        api_note_reveal(r, id);
    return http_reply_json(r, 200, out);
}

typedef struct patch_ctx {
    const shard_patch *p;
    const sysclock *clock;
} patch_ctx;

static int patch_fn(shard *s, void *vctx, errdetail *e)
{
    (void)e;
    patch_ctx *c = vctx;
    return shardbody_patch_apply(s, c->p, clock_wall_ms(c->clock));
}

int api_shards_patch(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_shards_patch, ctx);
    app *a = ctx;
    if (!a->shards)
        return shardjson_reply_no_manager(r);
    const char *id = http_req_param(r, "id");
    unsigned flags;
    if (flags_of(r, &flags) < 0)
        return CITRUS_EINVAL;
    json_t *body = http_req_json(r);
    if (!body)
        return CITRUS_EBADJSON;
    shard_patch p;
    errdetail e;
    int rc = shardbody_patch(body, &p, &e);
    json_decref(body);
    if (rc < 0)
        return http_reply_error(r, rc, e.message, NULL);
    errdetail_clear(&e);
    shard s;
    reg_result res;
    patch_ctx pc = {&p, a->shards->clock};
    rc = registry_shard_modify(a->shards->reg, id, patch_fn, &pc, flags, NULL, &s, &res, &e);
    shardbody_patch_clear(&p);
    if (rc < 0) {
        reg_result_clear(&res);
        return reply_failed(r, rc, id, e.message, NULL);
    }
    return reply_changed(r, a, &s, &res, false, false);
}

int api_shards_action(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_shards_action, ctx);
    app *a = ctx;
    if (!a->shards)
        return shardjson_reply_no_manager(r);
    const char *id = http_req_param(r, "id");
    const char *action = http_req_param(r, "action");
    const principal *who = api_principal(r);
    if (strcmp(action, "retire") == 0 && !(who->roles & AUTH_ADMIN))
        return api_forbid(r, "%s may not retire a shard: that needs sm-admin", who->name);
    unsigned flags;
    if (flags_of(r, &flags) < 0)
        return CITRUS_EINVAL;
    shard s;
    reg_result res = {0};
    errdetail e = {0};
    int rc = svc_shard_action(a->shards, id, action, flags, "api", &s, &res, &e);
    if (rc < 0) {
        json_t *extra = NULL;
        if (rc == CITRUS_EFORCE)
            extra = json_pack("{s:I}", "tenants_affected", (json_int_t)res.tenants_affected);
        reg_result_clear(&res);
        if (rc == CITRUS_ENOTFOUND && !e.message[0])
            return http_reply_errorf(r, rc, "shard '%s' not found", id);
        if (rc == CITRUS_ENOTFOUND && strncmp(e.message, "unknown action", 14) == 0)
            return http_reply_error(r, CITRUS_ENOROUTE, e.message,
                                    json_pack("{s:[s,s,s,s,s]}", "actions", "drain", "activate",
                                              "retire", "read-only", "retry"));
        return http_reply_error(r, rc, e.message[0] ? e.message : NULL, extra);
    }
    return reply_changed(r, a, &s, &res, true, flags & REG_DRY_RUN);
}

int api_shards_delete(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_shards_delete, ctx);
    app *a = ctx;
    if (!a->shards)
        return shardjson_reply_no_manager(r);
    const char *id = http_req_param(r, "id");
    unsigned flags;
    if (flags_of(r, &flags) < 0)
        return CITRUS_EINVAL;
    reg_result res;
    errdetail e = {0};
    int rc = svc_shard_delete(a->shards, id, flags & REG_FORCE, &res, &e);
    if (rc < 0) {
        /* counts only when the state allowed a delete and they were what refused it */
        json_t *extra = rc == CITRUS_EINUSE && (res.tokens_before || res.tenants_affected)
                            ? json_pack("{s:I,s:I}", "tokens", (json_int_t)res.tokens_before,
                                        "tenants", (json_int_t)res.tenants_affected)
                            : NULL;
        reg_result_clear(&res);
        return reply_failed(r, rc, id, e.message, extra);
    }
    json_t *out =
        json_pack("{s:s,s:b,s:o}", "id", id, "deleted", 1, "ring", shardjson_change(&res));
    reg_result_clear(&res);
    return http_reply_json(r, 200, out);
}
