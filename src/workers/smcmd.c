/* workers/smcmd.c — the shard management worker's handler (see smcmd.h). */
#include "workers/smcmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "controller/election.h"
#include "core/shard.h"
#include "obs/log.h"
#include "registry/tenants.h"
#include "sys/deadline.h"

#define ACTOR "sm-worker"

typedef enum { OP_ACTION, OP_PROVISION, OP_DELETE, OP_REGISTER } op_kind;

static const struct {
    const char *name; /* after citrus.sm. */
    op_kind kind;
    const char *action; /* svc_shard_action's name */
} ops[] = {
    {"provision", OP_PROVISION, NULL},
    {"drain", OP_ACTION, "drain"},
    {"activate", OP_ACTION, "activate"},
    {"read_only", OP_ACTION, "read-only"},
    {"read-only", OP_ACTION, "read-only"},
    {"retire", OP_ACTION, "retire"},
    {"retry", OP_ACTION, "retry"},
    {"delete", OP_DELETE, NULL},
    {"register_location", OP_REGISTER, NULL},
};

bool smcmd_ready(void *ctx)
{
    smcmd_ctx *c = ctx;
    int64_t token;
    return !c->leader || c->leader(c->leader_ctx, &token);
}

/* The fence for this command's writes: *fence unset (token 0) when
 * unfenced; CITRUS_EUNAVAILABLE (retried) when this node does not lead. */
static int fence_now(const smcmd_ctx *c, reg_fence *fence, errdetail *e)
{
    *fence = (reg_fence){c->fence_key ? c->fence_key : ELECTION_KEY, 0};
    if (c->leader && !c->leader(c->leader_ctx, &fence->token))
        return errdetail_set(e, CITRUS_EUNAVAILABLE,
                             "this node is not the controller leader: the command is left to it");
    return 0;
}

/* A failure no later attempt can turn into a success: the request is
 * wrong (4xx), as the API would answer it, but a compare that lost a race. */
static bool permanent(int rc)
{
    int status = citrus_err_http_status(rc);
    return status >= 400 && status < 500 && rc != CITRUS_ECONFLICT;
}

/* Publishes the outcome on the lifecycle topic. */
static int outcome(smcmd_ctx *c, const envelope *cmd, const char *shard_id, bool ok, json_t *data,
                   errdetail *e)
{
    char id[ENVELOPE_ID_MAX + 16];
    snprintf(id, sizeof(id), "smcmd-%s%s", cmd->id, ok ? "" : "-failed");
    json_object_set_new(data, "commandId", json_string(cmd->id));
    json_object_set_new(data, "command", json_string(cmd->type));
    json_object_set_new(data, "shardId", shard_id ? json_string(shard_id) : json_null());
    envelope ev;
    envelope_spec spec = {.id = id,
                          .type = ok ? "citrus.sm.command.completed" : "citrus.sm.command.failed",
                          .source = "/citrus/workers/shard-management",
                          .subject = shard_id,
                          .time_ms = clock_wall_ms(NULL),
                          .correlationid = cmd->correlationid,
                          .traceparent = cmd->traceparent,
                          .data = data};
    errdetail be;
    int rc = envelope_build(&spec, &ev, &be);
    json_decref(data);
    if (rc < 0)
        return errdetail_set(e, rc, "outcome event: %s", be.message);
    size_t len = 0;
    char *text = envelope_encode(&ev, &len);
    envelope_clear(&ev);
    if (!text)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    char key[BUS_KEY_MAX];
    snprintf(key, sizeof(key), "shard/%s", shard_id ? shard_id : "");
    int part;
    int64_t off;
    rc = bus_publish(c->bus, c->events_topic, key, strlen(key), text, len, &part, &off, e);
    free(text);
    return rc;
}

/* data.<name> as a string (NULL when absent), or CITRUS_EBADJSON. */
static int opt_str(json_t *data, const char *name, const char **out, errdetail *e)
{
    json_t *v = json_object_get(data, name);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return errdetail_set(e, CITRUS_EBADJSON, "data.%s: must be a string", name);
    *out = json_string_value(v);
    return 0;
}

static int provision(smcmd_ctx *c, const char *id, json_t *data, const reg_fence *fence, shard *s,
                     bool *changed, errdetail *e)
{
    const char *tmpl = NULL, *zone = NULL;
    int rc = opt_str(data, "template", &tmpl, e);
    if (rc == 0)
        rc = opt_str(data, "zone", &zone, e);
    json_t *params = json_object_get(data, "params"), *weight = json_object_get(data, "weight");
    if (rc == 0 && params && !json_is_object(params) && !json_is_null(params))
        rc = errdetail_set(e, CITRUS_EBADJSON, "data.params: must be an object");
    if (rc == 0 && weight &&
        (!json_is_number(weight) || json_number_value(weight) <= 0 ||
         json_number_value(weight) > 100))
        rc = errdetail_set(e, CITRUS_EBADJSON, "data.weight: must be a number in (0, 100]");
    if (rc < 0)
        return rc;
    shard_spec spec = {.provision = true,
                       .weight = weight ? json_number_value(weight) : 1.0,
                       .zone = (char *)zone,
                       .template_name = (char *)tmpl,
                       .params = json_is_object(params) ? params : NULL};
    snprintf(spec.id, sizeof(spec.id), "%s", id);
    rc = svc_provision_shard_fenced(c->svc, &spec, ACTOR, fence, s, e);
    *changed = rc == 0;
    if (rc != CITRUS_EEXISTS)
        return rc;
    /* delivered again: the shard it made is there (with the same template) */
    shard_clear(s);
    if (registry_shard_get(c->svc->reg, id, s, NULL) < 0)
        return rc;
    bool same = (!tmpl && !s->template_name) ||
                (tmpl && s->template_name && strcmp(tmpl, s->template_name) == 0);
    if (same) {
        errdetail_clear(e);
        return 0;
    }
    shard_clear(s);
    return errdetail_set(e, CITRUS_EEXISTS, "shard '%s' exists with another template", id);
}

/* A forced retire or delete delivered again (the shard retired or gone
 * already): the re-pin that followed it may not have finished (a fence
 * that moved, a crash between the two), so its tenants still pinned there
 * are moved now, under this command's fence. */
static int repin_again(smcmd_ctx *c, const char *id, unsigned flags, const reg_fence *fence,
                       errdetail *e)
{
    size_t moved = 0;
    if (!(flags & REG_FORCE))
        return 0;
    return tenants_repin_fenced(c->svc->reg, id, fence, &moved, e);
}

static int action(smcmd_ctx *c, const char *id, const char *name, unsigned flags,
                  const reg_fence *fence, shard *s, bool *changed, errdetail *e)
{
    reg_result res = {0};
    int rc = svc_shard_action_fenced(c->svc, id, name, flags, ACTOR, fence, s, &res, e);
    reg_result_clear(&res);
    *changed = rc == 0;
    if (rc != CITRUS_ETRANSITION)
        return rc;
    /* delivered again: the shard is where the command moves it already */
    shard_state to;
    if (svc_action_target(name, &to) < 0 || registry_shard_get(c->svc->reg, id, s, NULL) < 0)
        return rc;
    if (s->state == to) {
        errdetail_clear(e);
        rc = to == SHARD_RETIRED ? repin_again(c, id, flags, fence, e) : 0;
        if (rc < 0)
            shard_clear(s);
        return rc;
    }
    shard_clear(s);
    return rc;
}

/* A required data.<name> that must pass ok; CITRUS_EINVAL/EBADJSON naming it. */
static int req_str(json_t *data, const char *name, bool (*ok)(const char *), const char *rule,
                   const char **out, errdetail *e)
{
    int rc = opt_str(data, name, out, e);
    if (rc == 0 && !*out)
        rc = errdetail_set(e, CITRUS_EINVAL, "data.%s: required", name);
    if (rc == 0 && !ok(*out))
        rc = errdetail_set(e, CITRUS_EINVAL, "data.%s: must be %s", name, rule);
    return rc;
}

static bool type_valid(const char *name)
{
    return schema_template_valid(name) != 0;
}

/* POST /api/register's registration: idempotent by location (the same
 * location and type again answers the pin it has). out gets the pin. */
static int register_location(smcmd_ctx *c, json_t *data, const reg_fence *fence, tenant_pin *out,
                             bool *changed, errdetail *e)
{
    static const char *const allowed[] = {"businessId", "locationId", "businessType"};
    const char *k;
    json_t *v;
    json_object_foreach(data, k, v)
    {
        bool ok = false;
        for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]) && !ok; i++)
            ok = strcmp(allowed[i], k) == 0;
        if (!ok)
            return errdetail_set(e, CITRUS_EBADJSON,
                                 "data.%.64s: unknown field (allowed: businessId, locationId, "
                                 "businessType)",
                                 k);
    }
    tenant_reg reg;
    int rc = req_str(data, "businessId", tenant_id_valid, "1..128 characters of [A-Za-z0-9._@-]",
                     &reg.business_id, e);
    if (rc == 0)
        rc = req_str(data, "locationId", tenant_id_valid, "1..128 characters of [A-Za-z0-9._@-]",
                     &reg.location_id, e);
    if (rc == 0)
        rc = req_str(data, "businessType", type_valid, "1..64 characters of [A-Za-z0-9_-]",
                     &reg.business_type, e);
    if (rc == 0)
        rc = svc_type_check(c->svc, reg.business_type, NULL, e);
    if (rc < 0)
        return rc;
    svc_ensure_ctx ectx = {.svc = c->svc,
                           .dl = c->attempt_ms > 0 ? deadline_after(NULL, c->attempt_ms)
                                                   : (deadline){0}};
    bool created = false;
    rc = tenants_register_fenced(c->svc->reg, &reg, 1, svc_ensure_template, &ectx, fence, out,
                                 &created, e);
    *changed = rc == 0 && created;
    return rc;
}

int smcmd_handle(void *ctx, const envelope *ev, const bus_message *m, worker_effect *fx,
                 errdetail *e)
{
    (void)m;
    smcmd_ctx *c = ctx;
    const char *name = strncmp(ev->type, SMCMD_TYPE_PREFIX, strlen(SMCMD_TYPE_PREFIX)) == 0
                           ? ev->type + strlen(SMCMD_TYPE_PREFIX)
                           : "";
    size_t k = 0, nops = sizeof(ops) / sizeof(ops[0]);
    while (k < nops && strcmp(ops[k].name, name) != 0)
        k++;
    json_t *data = ev->data;
    const char *id = NULL;
    json_t *force = json_object_get(data, "force");
    int rc = 0;
    if (k == nops)
        rc = errdetail_set(e, CITRUS_EINVAL,
                           "type: '%.200s' is no shard command (citrus.sm.provision, drain, "
                           "activate, read_only, retire, retry, delete, register_location)",
                           ev->type);
    else if (!json_is_object(data))
        rc = errdetail_set(e, CITRUS_EBADJSON, "data: must be an object");
    else if (ops[k].kind == OP_REGISTER)
        ; /* its own fields (register_location) */
    else if ((rc = opt_str(data, "shardId", &id, e)) == 0 && (!id || !shard_id_valid(id)))
        rc = errdetail_set(e, CITRUS_EBADJSON, "data.shardId: %s",
                           id ? "not a valid shard id" : "required");
    else if (rc == 0 && force && !json_is_boolean(force))
        rc = errdetail_set(e, CITRUS_EBADJSON, "data.force: must be true or false");
    unsigned flags = json_is_true(force) ? REG_FORCE : 0;
    shard s;
    shard_init(&s);
    bool changed = false;
    reg_fence fence;
    tenant_pin pin;
    memset(&pin, 0, sizeof(pin));
    if (rc == 0 && (rc = fence_now(c, &fence, e)) < 0) {
        shard_clear(&s);
        return rc; /* not the leader (deposed since the poll): retried */
    }
    if (rc == 0 && ops[k].kind == OP_PROVISION)
        rc = provision(c, id, data, &fence, &s, &changed, e);
    else if (rc == 0 && ops[k].kind == OP_ACTION)
        rc = action(c, id, ops[k].action, flags, &fence, &s, &changed, e);
    else if (rc == 0 && ops[k].kind == OP_REGISTER) {
        rc = register_location(c, data, &fence, &pin, &changed, e);
        id = rc == 0 ? pin.shard_id : NULL;
    } else if (rc == 0) {
        reg_result res = {0};
        rc = svc_shard_delete_fenced(c->svc, id, flags, &fence, &res, e);
        reg_result_clear(&res);
        changed = rc == 0;
        if (rc == CITRUS_ENOTFOUND) { /* delivered again: it is gone */
            errdetail_clear(e);
            rc = repin_again(c, id, flags, &fence, e);
        }
    }
    if (rc < 0 && !permanent(rc)) {
        shard_clear(&s);
        return rc; /* the bus tries again after its backoff */
    }
    errdetail pe;
    int prc;
    if (rc == 0) {
        json_t *out = json_pack("{s:b}", "changed", changed);
        if (ops[k].kind == OP_REGISTER) /* the location and its shard: never a DSN */
            json_object_update_new(
                out, json_pack("{s:s,s:s,s:s}", "businessId",
                               json_string_value(json_object_get(data, "businessId")), "locationId",
                               json_string_value(json_object_get(data, "locationId")),
                               "businessType", pin.business_type));
        else if (ops[k].kind != OP_DELETE)
            json_object_set_new(out, "state", json_string(shard_state_name(s.state)));
        prc = outcome(c, ev, id, true, out, &pe);
    } else {
        prc = outcome(c, ev, id, false,
                      json_pack("{s:s,s:s}", "error", citrus_err_code(rc), "message", e->message),
                      &pe);
        fx->permanent = true;
    }
    shard_clear(&s);
    if (prc < 0) /* applied (or refused for good), but not told: try again, idempotent */
        return errdetail_set(e, prc, "publishing the outcome: %s", pe.message);
    return rc;
}
