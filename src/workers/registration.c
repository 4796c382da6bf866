/* workers/registration.c — the registration worker's handler (see
 * registration.h). */
#include "workers/registration.h"

#include <stdio.h>
#include <string.h>

#include "citrus/errors.h"
#include "obs/log.h"
#include "registry/tenants.h"
#include "sys/deadline.h"

/* Whether an error of the registration is permanent (no retry can help). */
static bool regq_error_permanent(int rc)
{
    return rc == CITRUS_EREGCONFLICT || rc == CITRUS_EUNKNOWNTYPE || rc == CITRUS_EINVAL ||
           rc == CITRUS_EBADJSON;
}

static int default_register(const regq_worker_ctx *c, const tenant_reg *reg, tenant_pin *pin,
                            errdetail *e)
{
    svc_ensure_ctx ectx = {.svc = c->svc, .dl = deadline_after(NULL, c->attempt_ms)};
    bool created = false;
    return tenants_register(c->svc->reg, reg, 1, svc_ensure_template, &ectx, pin, &created, e);
}

/* The latest time the bus delivers attempt `attempt` + 1 (its backoff
 * before jitter). */
static int64_t next_attempt(const regq_worker_ctx *c, int64_t now, int attempt)
{
    int64_t d = c->backoff_base_ms;
    for (int i = 1; i < attempt && d < c->backoff_cap_ms; i++)
        d = d > INT64_MAX / 2 ? c->backoff_cap_ms : d * 2;
    return now + (d < c->backoff_cap_ms ? d : c->backoff_cap_ms);
}

static void save(const regq_worker_ctx *c, reg_row *g)
{
    errdetail e;
    g->updated_ms = clock_wall_ms(c->clock);
    if (records_reg_update(c->rec, g, REG_NSTATES, NULL, &e) < 0)
        log_warn("worker", "registration: its record could not be updated",
                 json_pack("{s:s,s:s,s:s}", "registration", g->id, "state",
                           reg_state_name(g->state), "error", e.message));
}

int regq_handle(void *ctx, const envelope *ev, const bus_message *m, worker_effect *fx,
                errdetail *e)
{
    const regq_worker_ctx *c = ctx;
    const char *id = json_string_value(json_object_get(ev->data, "registrationId"));
    if (!id) {
        fx->permanent = true;
        return errdetail_set(e, CITRUS_EBADJSON, "data.registrationId: required, a string");
    }
    reg_row g;
    int rc = records_reg_get(c->rec, id, &g, e);
    if (rc == CITRUS_ENOTFOUND) {
        fx->permanent = true; /* purged, or never stored: nothing to do but say so */
        return rc;
    }
    if (rc < 0)
        return rc; /* the store: retried */
    if (g.state == REG_SUCCEEDED) {
        fx->skipped = true;
        return 0;
    }
    g.state = REG_RUNNING;
    g.attempts++;
    g.next_attempt_ms = 0;
    save(c, &g);
    tenant_reg reg = {.business_id = g.business_id,
                      .location_id = g.location_id,
                      .business_type = g.business_type};
    tenant_pin pin;
    memset(&pin, 0, sizeof(pin));
    rc = c->do_register ? c->do_register(c->do_ctx, &reg, &pin, e)
                        : default_register(c, &reg, &pin, e);
    if (rc == 0) {
        g.state = REG_SUCCEEDED;
        g.last_error[0] = '\0';
        snprintf(g.shard_id, sizeof(g.shard_id), "%s", pin.shard_id);
        save(c, &g);
        return 0;
    }
    if (rc > 0)
        rc = CITRUS_EIO;
    snprintf(g.last_error, sizeof(g.last_error), "%s: %s", citrus_err_code(rc),
             e->message[0] ? e->message : citrus_strerror(rc));
    bool permanent = regq_error_permanent(rc);
    bool last = m->attempt >= c->max_attempts;
    g.state = permanent || last ? REG_FAILED : REG_RETRYING;
    if (g.state == REG_RETRYING)
        g.next_attempt_ms = next_attempt(c, clock_wall_ms(c->clock), m->attempt);
    save(c, &g);
    fx->permanent = permanent;
    return rc;
}
