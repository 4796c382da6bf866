/* workers/registration.c — the registration worker's handler and its
 * retry sweeper (see registration.h). */
#include "workers/registration.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "obs/log.h"
#include "registry/tenants.h"
#include "sys/deadline.h"
#include "wire/regmsg.h"

#define SWEEP_PAGE 1000 /* registrations one sweep looks at per state */

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

/* When the attempt after failed attempt `attempt` is due: the bus's
 * backoff (base doubled per attempt, capped, jittered down to half). */
static int64_t next_attempt(const regq_worker_ctx *c, int64_t now, int attempt)
{
    bus_config bc = {.backoff_base_ms = c->backoff_base_ms,
                     .backoff_cap_ms = c->backoff_cap_ms,
                     .random = c->random,
                     .random_ctx = c->random_ctx};
    return now + bus_backoff_ms(&bc, attempt);
}

/* Writes g over its record when it still has state `was` and `attempts`
 * attempts; *won (may be NULL): whether it did. A store failure is logged
 * (the record keeps its last state). */
static int save_if(const regq_worker_ctx *c, reg_row *g, reg_state was, int attempts, bool *won)
{
    errdetail e;
    g->updated_ms = clock_wall_ms(c->clock);
    int rc = records_reg_update_if(c->rec, g, was, attempts, won, &e);
    if (rc < 0)
        log_warn("worker", "registration: its record could not be updated",
                 json_pack("{s:s,s:s,s:s}", "registration", g->id, "state",
                           reg_state_name(g->state), "error", e.message));
    return rc;
}

static void save(const regq_worker_ctx *c, reg_row *g)
{
    save_if(c, g, REG_NSTATES, -1, NULL);
}

int regq_handle(void *ctx, const envelope *ev, const bus_message *m, worker_effect *fx,
                errdetail *e)
{
    (void)m;
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
    /* running, until the deadline of this delivery's lease; claimed with a
     * compare, so that two copies of its message never run at once */
    reg_state was = g.state;
    int seen = g.attempts;
    g.state = REG_RUNNING;
    g.attempts++;
    g.drive_attempts++;
    g.next_attempt_ms = c->lease_ms > 0 ? clock_wall_ms(c->clock) + c->lease_ms : 0;
    bool won = false;
    if ((rc = save_if(c, &g, was, seen, &won)) < 0)
        return errdetail_set(e, rc, "registration %s: its record cannot be written", id);
    if (!won) { /* another copy has it (or it changed meanwhile): that one goes on */
        fx->skipped = true;
        return 0;
    }
    tenant_reg reg = {.business_id = g.business_id,
                      .location_id = g.location_id,
                      .business_type = g.business_type};
    tenant_pin pin;
    memset(&pin, 0, sizeof(pin));
    rc = c->do_register ? c->do_register(c->do_ctx, &reg, &pin, e)
                        : default_register(c, &reg, &pin, e);
    g.next_attempt_ms = 0;
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
    bool last = g.drive_attempts >= c->max_attempts;
    g.state = permanent || last ? REG_FAILED : REG_RETRYING;
    if (g.state == REG_RETRYING)
        g.next_attempt_ms = next_attempt(c, clock_wall_ms(c->clock), g.drive_attempts);
    save(c, &g);
    if (g.state == REG_RETRYING) {
        /* Committed, not nacked: a nacked message would hold back every
         * later message of its partition (other businesses' too) until it
         * succeeds. The sweeper publishes the next attempt when it is due. */
        log_info("worker", "registration: retried after backoff",
                 json_pack("{s:s,s:i,s:I,s:s}", "registration", g.id, "attempt", g.drive_attempts,
                           "next_attempt_ms", (json_int_t)g.next_attempt_ms, "error",
                           g.last_error));
        fx->skipped = true;
        return 0;
    }
    fx->permanent = true; /* failed: its message to the dead letters now */
    return rc;
}

/* Publishes the message of g's next attempt: id "<registration id>.<attempts
 * made>", the same for every sweep that publishes this attempt (the
 * runner's ledger and the handler's claim make copies harmless). */
static int publish_attempt(const regq_worker_ctx *c, const reg_row *g, errdetail *e)
{
    char id[RECORDS_MAX_REG_ID + 16];
    snprintf(id, sizeof(id), "%s.%d", g->id, g->attempts);
    regmsg m = {.registration_id = g->id,
                .business_id = g->business_id,
                .location_id = g->location_id,
                .business_type = g->business_type,
                .type = RECORDS_REG_EVENT_TYPE,
                .event_id = id,
                .source = "/citrus/workers/registration",
                .correlationid = g->correlation_id[0] ? g->correlation_id : NULL,
                .time_ms = clock_wall_ms(c->clock)};
    size_t len = 0;
    char *text = NULL;
    int rc = regmsg_encode(&m, &text, &len, e);
    if (rc != 0)
        return rc;
    char key[2 * RECORDS_MAX_REG_TENANT + 2];
    int part;
    int64_t off;
    rc = bus_publish(c->bus, c->topic, key, records_reg_key(g, key, sizeof(key)), text, len, &part,
                     &off, e);
    free(text);
    return rc;
}

/* The rows in state st (at most SWEEP_PAGE); free(*rows). */
static int rows_in(const regq_worker_ctx *c, reg_state st, reg_row **rows, size_t *n, errdetail *e)
{
    reg_query q = {.has_state = true, .state = st, .limit = SWEEP_PAGE};
    return records_reg_query(c->rec, &q, rows, n, NULL, e);
}

int regq_sweep(const regq_worker_ctx *c, size_t *published, size_t *stale, errdetail *e)
{
    *published = *stale = 0;
    int64_t now = clock_wall_ms(c->clock);
    reg_row *rows = NULL;
    size_t n = 0;
    /* A running one past its lease and a grace of one more lease: no
     * delivery of its message came back (the worker died in its last
     * delivery, which the bus dead-lettered, or the bus lost track). */
    int rc = rows_in(c, REG_RUNNING, &rows, &n, e);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        reg_row g = rows[i];
        if (g.next_attempt_ms <= 0 || now <= g.next_attempt_ms + c->lease_ms)
            continue;
        bool last = g.drive_attempts >= c->max_attempts;
        snprintf(g.last_error, sizeof(g.last_error),
                 "worker_stopped: the worker stopped during attempt %d without an outcome%s",
                 g.drive_attempts, last ? " (the last one)" : "");
        g.state = last ? REG_FAILED : REG_RETRYING;
        g.next_attempt_ms = last ? 0 : now; /* due at once */
        bool won = false;
        if (save_if(c, &g, REG_RUNNING, rows[i].attempts, &won) == 0 && won)
            (*stale)++;
    }
    free(rows);
    rows = NULL;
    if (rc == 0)
        rc = rows_in(c, REG_RETRYING, &rows, &n, e);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        reg_row g = rows[i];
        if (g.next_attempt_ms > now)
            continue;
        errdetail pe;
        if (publish_attempt(c, &g, &pe) < 0) { /* the next sweep tries again */
            log_warn("worker", "registration: its next attempt could not be published",
                     json_pack("{s:s,s:s}", "registration", g.id, "error", pe.message));
            continue;
        }
        /* published first: a sweep that dies here publishes the same id again */
        g.state = REG_QUEUED;
        g.next_attempt_ms = 0;
        bool won = false;
        save_if(c, &g, REG_RETRYING, rows[i].attempts, &won);
        (*published)++;
    }
    free(rows);
    return rc;
}
