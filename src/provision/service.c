/* provision/service.c — registering, provisioning and changing shards (see
 * service.h); the provisioning worker is in worker.c. */
#include "provision/service.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "citrus/errors.h"
#include "obs/metrics.h"
#include "obs/log.h"
#include "provision/ctlconns.h"
#include "provision/schema.h"
#include "core/dsn.h"
#include "dbconn/driver.h"
#include "sys/fs.h"

int shard_service_init(shard_service *svc, registry *reg, provisioner *prov,
                       const char *templates_dir, int64_t db_timeout_ms, const char *node_id,
                       const sysclock *clock)
{
    memset(svc, 0, sizeof(*svc));
    svc->reg = reg;
    svc->prov = prov;
    snprintf(svc->templates_dir, sizeof(svc->templates_dir), "%s",
             templates_dir ? templates_dir : "");
    svc->db_timeout_ms = db_timeout_ms > 0 ? db_timeout_ms : 5000;
    snprintf(svc->node_id, sizeof(svc->node_id), "%s", node_id ? node_id : "node1");
    svc->clock = clock;
    svc->conns = ctlconns_new(clock, svc->db_timeout_ms);
    pthread_mutex_init(&svc->mu, NULL);
    clock_cond_init(&svc->cv); /* the worker's waits: monotonic */
    return 0;
}

void shard_service_destroy(shard_service *svc)
{
    svc_worker_stop(svc);
    ctlconns_free(svc->conns);
    if (svc->prov)
        svc->prov->free(svc->prov);
    registry_free(svc->reg);
    pthread_mutex_destroy(&svc->mu);
    pthread_cond_destroy(&svc->cv);
    memset(svc, 0, sizeof(*svc));
}

/* "shard-" and 8 random hex digits. */
static void new_id(char *out, size_t len)
{
    unsigned char b[4] = {0};
    RAND_bytes(b, sizeof(b));
    snprintf(out, len, "shard-%02x%02x%02x%02x", b[0], b[1], b[2], b[3]);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

char *svc_dsn_stored(const char *dsn)
{
    dsn_info info;
    if (!dsn || dsn_parse(dsn, &info, NULL) != 0)
        return dup_or_null(dsn); /* checked before: kept as given */
    if (info.kind == DSN_POSTGRES)
        return dsn_to_uri(dsn, NULL);
    char *path = fs_canonical_path(info.path), *out = NULL;
    if (path && asprintf(&out, "sqlite://%s", path) < 0)
        out = NULL;
    free(path);
    return out;
}

/* A new record from a spec: pending, with the spec's settings, made at
 * now_ms. */
static int shard_from_spec(const shard_spec *spec, int64_t now_ms, shard *s)
{
    shard_init(s);
    if (spec->id[0])
        snprintf(s->id, sizeof(s->id), "%s", spec->id);
    else
        new_id(s->id, sizeof(s->id));
    s->weight = spec->weight;
    s->created_ms = s->updated_ms = now_ms;
    s->dsn = svc_dsn_stored(spec->dsn);
    s->zone = dup_or_null(spec->zone);
    s->template_name = dup_or_null(spec->template_name);
    if ((spec->dsn && !s->dsn) || (spec->zone && !s->zone) ||
        (spec->template_name && !s->template_name))
        return CITRUS_ENOMEM;
    if (spec->nreplicas) {
        if (!(s->replicas = calloc(spec->nreplicas, sizeof(*s->replicas))))
            return CITRUS_ENOMEM;
        s->nreplicas = spec->nreplicas;
        for (size_t i = 0; i < spec->nreplicas; i++)
            if (!(s->replicas[i] = svc_dsn_stored(spec->replicas[i])))
                return CITRUS_ENOMEM;
    }
    if (spec->ntags) {
        if (!(s->tags = shard_tags_copy(spec->tags, spec->ntags)))
            return CITRUS_ENOMEM;
        s->ntags = spec->ntags;
    }
    return 0;
}

int svc_schema_apply(shard_service *svc, const char *shard_id, const char *dsn,
                     const char *template_name, schema_result *res, errdetail *e)
{
    char *owner =
        svc->prov && svc->prov->owner_dsn ? svc->prov->owner_dsn(svc->prov, shard_id, dsn) : NULL;
    int rc = schema_apply(owner ? owner : dsn, svc->templates_dir, template_name,
                          svc->db_timeout_ms, res, e);
    free(owner);
    return rc;
}

/* Applies templates_dir/<name> to shard id's database at dsn (no-op
 * without a templates dir). */
static int apply_template(shard_service *svc, const char *id, const char *dsn, const char *name,
                          errdetail *e)
{
    if (!name || !*name)
        return 0;
    if (!svc->templates_dir[0])
        return errdetail_set(e, CITRUS_EUNPROCESSABLE,
                             "template '%s': no templates directory is configured", name);
    schema_result res;
    int rc = svc_schema_apply(svc, id, dsn, name, &res, e);
    if (rc < 0)
        errdetail_prefix(e, "template '%s'", name);
    else
        log_info("shards", "template applied",
                 json_pack("{s:s,s:I,s:I}", "template", name, "applied", (json_int_t)res.applied,
                           "skipped", (json_int_t)res.skipped));
    return rc;
}

/* CITRUS_ESUPERUSER when dsn (what: how the caller names it; never the DSN
 * itself, which holds a password) is a PostgreSQL DSN logging in as a
 * superuser, who bypasses row-level security and may do anything on the
 * server; 0 when not, for SQLite, and when it cannot be reached (the
 * probe's business: a shard registered unverified is checked if it
 * answers). */
static int superuser_check(shard_service *svc, const char *what, const char *dsn, errdetail *e)
{
    dsn_info info;
    drv_conn *c = NULL;
    if (!dsn || dsn_parse(dsn, &info, NULL) != 0 || info.kind != DSN_POSTGRES ||
        drv_open(dsn, &(drv_options){.timeout_ms = svc->db_timeout_ms, .clock = svc->clock}, &c,
                 NULL) != 0)
        return 0;
    char **rows = NULL;
    size_t n = 0;
    int rc = drv_query_column(c, "SELECT current_setting('is_superuser')", &rows, &n, NULL);
    bool super = rc == 0 && n == 1 && strcmp(rows[0], "on") == 0;
    drv_free_column(rows, n);
    drv_close(c);
    if (!super)
        return 0;
    return errdetail_set(e, CITRUS_ESUPERUSER,
                         "%s logs in as a PostgreSQL superuser, which bypasses row-level security "
                         "and may change anything on the server: register a least-privilege role "
                         "(sm-admin may allow it with allow_superuser=true)",
                         what);
}

/* superuser_check of spec's DSN and replicas, unless allowed. */
static int superuser_refused(shard_service *svc, const shard_spec *spec, errdetail *e)
{
    if (spec->allow_superuser)
        return 0;
    int rc = superuser_check(svc, "dsn", spec->dsn, e);
    for (size_t i = 0; rc == 0 && i < spec->nreplicas; i++) {
        char what[32];
        snprintf(what, sizeof(what), "replicas[%zu]", i);
        rc = superuser_check(svc, what, spec->replicas[i], e);
    }
    return rc;
}

int svc_register_shard(shard_service *svc, const shard_spec *spec, bool verify, const char *actor,
                       shard *out, reg_result *res, errdetail *e)
{
    memset(res, 0, sizeof(*res));
    errdetail scratch;
    if (!e)
        e = &scratch;
    char *stored = svc_dsn_stored(spec->dsn); /* one database, one shard: before any work */
    int held = registry_shard_db_check(svc->reg, spec->id, stored ? stored : spec->dsn, e);
    free(stored);
    if (held < 0)
        return held;
    if (verify) {
        int rc = drv_probe(spec->dsn,
                           &(drv_options){.timeout_ms = svc->db_timeout_ms, .clock = svc->clock},
                           NULL, e);
        if (rc < 0) {
            errdetail_prefix(e, "cannot reach the database");
            return e->code = rc == CITRUS_EINVAL ? rc : CITRUS_EUNREACHABLE;
        }
    }
    int rc = superuser_refused(svc, spec, e);
    if (rc < 0)
        return rc;
    shard s;
    rc = shard_from_spec(spec, clock_wall_ms(svc->clock), &s);
    if (rc == 0 && verify)
        rc = apply_template(svc, s.id, s.dsn, s.template_name, e);
    int64_t now = s.created_ms;
    if (rc == 0)
        rc =
            shard_transition(&s, SHARD_INITIALIZING, "registered an existing database", actor, now);
    if (rc == 0)
        rc = shard_transition(&s, SHARD_ACTIVE,
                              verify ? "reachable and initialized" : "registered unverified", actor,
                              now);
    if (rc == 0)
        rc = registry_shard_create(svc->reg, &s, NULL, res, e);
    if (rc == 0 && out) {
        *out = s;
        return 0;
    }
    shard_clear(&s);
    return rc;
}

int svc_provision_shard(shard_service *svc, const shard_spec *spec, const char *actor, shard *out,
                        errdetail *e)
{
    return svc_provision_shard_fenced(svc, spec, actor, NULL, out, e);
}

int svc_provision_shard_fenced(shard_service *svc, const shard_spec *spec, const char *actor,
                               const reg_fence *fence, shard *out, errdetail *e)
{
    if (!svc->prov)
        return errdetail_set(e, CITRUS_EUNPROCESSABLE,
                             "no provisioner is configured (provisioner.kind)");
    shard s;
    int rc = shard_from_spec(spec, clock_wall_ms(svc->clock), &s);
    if (rc == 0)
        rc =
            shard_transition(&s, SHARD_PROVISIONING, "provisioning requested", actor, s.created_ms);
    json_t *prov =
        rc == 0 ? json_pack("{s:s?,s:O?}", "template", spec->template_name, "params", spec->params)
                : NULL;
    if (rc == 0 && !prov)
        rc = CITRUS_ENOMEM;
    reg_result res;
    if (rc == 0)
        rc = registry_shard_create_fenced(svc->reg, &s, prov, fence, &res, e);
    json_decref(prov);
    if (rc == 0) {
        reg_result_clear(&res);
        svc_worker_kick(svc);
    }
    if (rc == 0 && out) {
        *out = s;
        return 0;
    }
    shard_clear(&s);
    return rc;
}

/* ---- actions ---- */

typedef struct action_ctx {
    shard_state to;
    const char *reason, *actor;
    const sysclock *clock;
} action_ctx;

static int allowed_text(shard_state from, char *buf, size_t len)
{
    shard_state to[SHARD_NSTATES];
    size_t n = shard_transitions_from(from, to);
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++)
        snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", i ? ", " : "",
                 shard_state_name(to[i]));
    return 0;
}

static int do_action(shard *s, void *vctx, errdetail *e)
{
    action_ctx *c = vctx;
    int64_t now = clock_wall_ms(c->clock);
    /* retire walks draining -> drained -> retired */
    if (c->to == SHARD_RETIRED && s->state == SHARD_DRAINING &&
        shard_transition(s, SHARD_DRAINED, "drain finished", c->actor, now) < 0)
        return CITRUS_ENOMEM;
    if (s->state == c->to || !shard_transition_ok(s->state, c->to)) {
        char allowed[256];
        allowed_text(s->state, allowed, sizeof(allowed));
        return errdetail_set(
            e, CITRUS_ETRANSITION, "shard '%s' is %s and cannot go to %s; allowed: %s", s->id,
            shard_state_name(s->state), shard_state_name(c->to), allowed[0] ? allowed : "none");
    }
    return shard_transition(s, c->to, c->reason, c->actor, now);
}

/* After a change that took shard id out of the ring with tenants still
 * pinned to it (forced): moves them (on error res is cleared). */
static int repin_after(shard_service *svc, const char *id, unsigned flags, const reg_fence *fence,
                       reg_result *res, errdetail *e)
{
    size_t moved;
    if (!res->tenants_affected || (flags & REG_DRY_RUN))
        return 0;
    int rc = tenants_repin_fenced(svc->reg, id, fence, &moved, e);
    if (rc < 0)
        reg_result_clear(res);
    return rc;
}

static const struct {
    const char *name;
    shard_state to;
    const char *reason;
} actions[] = {
    {"drain", SHARD_DRAINING, "drain requested"},
    {"activate", SHARD_ACTIVE, "activation requested"},
    {"retire", SHARD_RETIRED, "retirement requested"},
    {"read-only", SHARD_READ_ONLY, "read-only requested"},
    {"retry", SHARD_PROVISIONING, "retry requested"},
};

int svc_action_target(const char *action, shard_state *to)
{
    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
        if (strcmp(actions[i].name, action) == 0) {
            *to = actions[i].to;
            return 0;
        }
    return CITRUS_ENOTFOUND;
}

int svc_shard_action(shard_service *svc, const char *id, const char *action, unsigned flags,
                     const char *actor, shard *out, reg_result *res, errdetail *e)
{
    return svc_shard_action_fenced(svc, id, action, flags, actor, NULL, out, res, e);
}

int svc_shard_action_fenced(shard_service *svc, const char *id, const char *action, unsigned flags,
                            const char *actor, const reg_fence *fence, shard *out, reg_result *res,
                            errdetail *e)
{
    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
        if (strcmp(actions[i].name, action) != 0)
            continue;
        action_ctx c = {actions[i].to, actions[i].reason, actor, svc->clock};
        shard s;
        shard_init(&s); /* set by a change that was written */
        int rc = registry_shard_modify(svc->reg, id, do_action, &c, flags, fence, &s, res, e);
        if (rc == 0)
            rc = repin_after(svc, id, flags, fence, res, e);
        if (rc == 0 && actions[i].to == SHARD_RETIRED && !(flags & REG_DRY_RUN))
            ctlconns_forget(svc->conns, id); /* out of service: its connections go */
        if (rc == 0 && actions[i].to == SHARD_PROVISIONING)
            svc_worker_kick(svc);
        if (rc == 0 && out)
            *out = s;
        else
            shard_clear(&s);
        return rc;
    }
    return errdetail_set(e, CITRUS_ENOTFOUND, "unknown action '%s'", action);
}

int svc_shard_delete(shard_service *svc, const char *id, unsigned flags, reg_result *res,
                     errdetail *e)
{
    return svc_shard_delete_fenced(svc, id, flags, NULL, res, e);
}

int svc_shard_delete_fenced(shard_service *svc, const char *id, unsigned flags,
                            const reg_fence *fence, reg_result *res, errdetail *e)
{
    int rc = registry_shard_delete_fenced(svc->reg, id, flags, fence, res, e);
    if (rc == 0 && !(flags & REG_DRY_RUN))
        ctlconns_forget(svc->conns, id);
    if (rc == 0) /* its metric series (the router's, per shard) go with it */
        metrics_forget("shard", id);
    return rc == 0 ? repin_after(svc, id, flags, fence, res, e) : rc;
}

/* apply_template for a registration: on a pooled connection (ctlconns)
 * within dl, remembering what is applied. The driver's errors as
 * schema_apply_conn gives them; *down when the shard did not answer. */
static int ensure_pooled(shard_service *svc, const shard *s, const char *name, const deadline *dl,
                         bool *down, errdetail *e)
{
    *down = false;
    if (!svc->templates_dir[0])
        return errdetail_set(e, CITRUS_EUNPROCESSABLE,
                             "template '%s': no templates directory is configured", name);
    dsn_info info;
    if (!s->dsn || dsn_parse(s->dsn, &info, e) != 0)
        return errdetail_set(e, CITRUS_EUNPROCESSABLE, "shard '%s' has no usable DSN", s->id);
    if (deadline_set(dl) && deadline_left_ms(dl) == 0) { /* say, queued past it */
        *down = true;
        return errdetail_set(e, CITRUS_ETIMEOUT, "no time left before the request's deadline");
    }
    char *owner =
        svc->prov && svc->prov->owner_dsn ? svc->prov->owner_dsn(svc->prov, s->id, s->dsn) : NULL;
    const char *dsn = owner ? owner : s->dsn;
    int64_t at = deadline_set(dl) ? clock_mono_ms(svc->clock) + deadline_left_ms(dl) : 0;
    if (at == 0 && deadline_set(dl))
        at = 1;
    ctl_entry *ent = NULL;
    drv_conn *c = NULL;
    schema_result res;
    memset(&res, 0, sizeof(res));
    int rc = svc->conns ? ctlconns_get(svc->conns, s->id, dsn, at, &ent, &c, e)
                        : errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    if (rc) {
        *down = rc != CITRUS_EINVAL && rc != CITRUS_ENOMEM;
    } else {
        char known[65];
        ctlconns_applied(svc->conns, ent, name, known);
        /* not known: one registration at a time checks and applies it */
        bool locked = !known[0] && ctlconns_apply_lock(ent, deadline_left_ms(dl)) == 0;
        if (!known[0] && !locked) {
            *down = true;
            rc = errdetail_set(e, CITRUS_ETIMEOUT,
                               "another registration setting up this shard did not finish in "
                               "time");
        }
        if (locked)
            ctlconns_applied(svc->conns, ent, name, known); /* it may be now */
        if (rc == 0) {
            rc = schema_apply_conn(c, info.kind, svc->templates_dir, name, known[0] ? known : NULL,
                                   &res, e);
            *down = rc != 0 && res.unreachable;
        }
        if (rc == 0)
            ctlconns_mark_applied(svc->conns, ent, name, res.digest);
        if (locked)
            ctlconns_apply_unlock(ent);
        ctlconns_put(svc->conns, ent, c, rc != 0 && !drv_alive(c));
    }
    free(owner);
    if (rc < 0)
        errdetail_prefix(e, "template '%s'", name);
    return rc;
}

int svc_ensure_template(void *ctx, const char *shard_id, const char *business_type, errdetail *e)
{
    const svc_ensure_ctx *ec = ctx;
    shard_service *svc = ec->svc;
    int known = svc_type_check(svc, business_type, NULL, e);
    if (known < 0)
        return known;
    if (!svc->templates_dir[0] || !schema_template_valid(business_type))
        return 0;
    char path[2048];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", svc->templates_dir, business_type);
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return 0; /* no template for this type: nothing to set up */
    shard s;
    int rc = registry_shard_get(svc->reg, shard_id, &s, NULL);
    if (rc < 0)
        return rc;
    bool down;
    rc = ensure_pooled(svc, &s, business_type, &ec->dl, &down, e);
    shard_clear(&s);
    if (rc < 0 && down) {
        errdetail_prefix(e, "shard '%s' did not answer in time", shard_id);
        rc = CITRUS_ESHARDDOWN;
        if (e)
            e->code = rc;
    } else if (rc == CITRUS_EIO || rc == CITRUS_ECONFLICT) {
        rc = CITRUS_EUNPROCESSABLE;
        if (e)
            e->code = rc;
    }
    return rc;
}
