/* provision/worker.c — the provisioning worker: on the controller leader, it
 * takes shards in provisioning (the provisioner creates their database)
 * and in initializing (template, reachability), and activates them or
 * marks them failed with the error. Every write is fenced by the leader
 * key's token, so a deposed leader cannot move a shard. It wakes when
 * asked (svc_worker_kick) and every second, which also resumes shards
 * left half-way by a restart: provisioners are idempotent per shard id.
 * The thread only waits; what it does each time is svc_worker_run_once,
 * which a test calls without the thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "controller/election.h"
#include "obs/log.h"
#include "dbconn/driver.h"
#include "registry/registry.h"
#include "provision/schema.h"
#include "provision/service.h"

#define PASS_EVERY_MS 1000
#define ACTOR "provisioner"

typedef struct step_ctx {
    shard_state from, to;
    const char *reason;
    const prov_result *result; /* the new DSN and replicas, or NULL */
    int64_t now_ms;            /* recorded in the history */
} step_ctx;

static int set_result(shard *s, const prov_result *r)
{
    char *dsn = svc_dsn_stored(r->dsn);
    char **reps = r->nreplicas ? calloc(r->nreplicas, sizeof(*reps)) : NULL;
    bool reps_ok = !r->nreplicas || reps;
    for (size_t i = 0; reps && i < r->nreplicas; i++)
        reps_ok = reps_ok && (reps[i] = svc_dsn_stored(r->replicas[i])) != NULL;
    if (!dsn || !reps_ok) {
        free(dsn);
        shard_strings_free(reps, r->nreplicas);
        return CITRUS_ENOMEM;
    }
    free(s->dsn);
    shard_strings_free(s->replicas, s->nreplicas);
    s->dsn = dsn;
    s->replicas = reps;
    s->nreplicas = r->nreplicas;
    return 0;
}

/* Moves the shard on only if it is still where the worker found it. */
static int step(shard *s, void *vctx, errdetail *e)
{
    step_ctx *c = vctx;
    if (s->state != c->from)
        return errdetail_set(e, CITRUS_ECONFLICT, "shard '%s' is now %s", s->id,
                             shard_state_name(s->state));
    if (c->result && set_result(s, c->result) < 0)
        return CITRUS_ENOMEM;
    return shard_transition(s, c->to, c->reason, ACTOR, c->now_ms);
}

/* 0, or the error (its detail in *e when e is not NULL). */
static int move_e(shard_service *svc, const char *id, shard_state from, shard_state to,
                  const char *reason, const prov_result *result, const reg_fence *fence,
                  errdetail *out);

static void move(shard_service *svc, const char *id, shard_state from, shard_state to,
                 const char *reason, const prov_result *result, const reg_fence *fence)
{
    move_e(svc, id, from, to, reason, result, fence, NULL);
}

static int move_e(shard_service *svc, const char *id, shard_state from, shard_state to,
                  const char *reason, const prov_result *result, const reg_fence *fence,
                  errdetail *out)
{
    step_ctx c = {from, to, reason, result, clock_wall_ms(svc->clock)};
    reg_result res;
    errdetail e = {0};
    int rc = registry_shard_modify(svc->reg, id, step, &c, 0, fence, NULL, &res, &e);
    reg_result_clear(&res);
    json_t *f = json_pack("{s:s,s:s,s:s,s:s}", "shard", id, "from", shard_state_name(from), "to",
                          shard_state_name(to), "reason", reason);
    if (rc < 0) {
        json_object_set_new(f, "error", json_string(citrus_err_code(rc)));
        json_object_set_new(f, "detail", json_string(e.message));
        log_warn("shards", "could not move shard", f);
    } else {
        log_info("shards", "shard moved", f);
    }
    if (out)
        *out = e;
    return rc;
}

static void provision_one(shard_service *svc, const shard *s, const reg_fence *fence)
{
    json_t *spec = NULL;
    errdetail e = {0};
    int rc = registry_provision_get(svc->reg, s->id, &spec);
    if (rc < 0)
        return;            /* the catalog is unreachable: next pass */
    if (!spec && s->dsn) { /* a registered database being retried */
        move(svc, s->id, SHARD_PROVISIONING, SHARD_INITIALIZING, "database exists", NULL, fence);
        return;
    }
    if (!svc->prov) {
        move(svc, s->id, SHARD_PROVISIONING, SHARD_FAILED, "no provisioner is configured", NULL,
             fence);
        json_decref(spec);
        return;
    }
    prov_request req = {.shard_id = s->id,
                        .template_name = json_string_value(json_object_get(spec, "template")),
                        .params = json_object_get(spec, "params")};
    prov_result res = {0};
    rc = svc->prov->provision(svc->prov, &req, &res, &e);
    if (rc == 0 && move_e(svc, s->id, SHARD_PROVISIONING, SHARD_INITIALIZING,
                          "database provisioned", &res, fence, &e) == CITRUS_EREGCONFLICT)
        rc = CITRUS_EREGCONFLICT; /* another shard has that database: retrying cannot help */
    if (rc < 0) {
        char reason[1200];
        snprintf(reason, sizeof(reason), "provisioning failed (%s): %s", citrus_err_code(rc),
                 e.message);
        move(svc, s->id, SHARD_PROVISIONING, SHARD_FAILED, reason, NULL, fence);
    }
    prov_result_clear(&res);
    json_decref(spec);
}

static void initialize_one(shard_service *svc, const shard *s, const reg_fence *fence)
{
    char reason[1200];
    errdetail e = {0};
    if (!s->dsn) {
        move(svc, s->id, SHARD_INITIALIZING, SHARD_FAILED, "no DSN to initialize", NULL, fence);
        return;
    }
    if (s->template_name && *s->template_name) {
        schema_result res;
        int rc = svc->templates_dir[0]
                     ? svc_schema_apply(svc, s->id, s->dsn, s->template_name, &res, &e)
                     : CITRUS_EUNPROCESSABLE;
        if (rc == CITRUS_EUNAVAILABLE)
            return; /* not reachable yet: next pass */
        if (rc < 0) {
            snprintf(reason, sizeof(reason), "template '%s' failed: %s", s->template_name,
                     svc->templates_dir[0] ? e.message : "no templates directory is configured");
            move(svc, s->id, SHARD_INITIALIZING, SHARD_FAILED, reason, NULL, fence);
            return;
        }
    }
    if (drv_probe(s->dsn, &(drv_options){.timeout_ms = svc->db_timeout_ms}, NULL, NULL) < 0)
        return; /* next pass */
    move(svc, s->id, SHARD_INITIALIZING, SHARD_ACTIVE, "initialized", NULL, fence);
}

/* One pass over the shards waiting for provisioning or initialization,
 * every write fenced by fence (NULL: unfenced). */
static void pass(shard_service *svc, const reg_fence *fence)
{
    shard *v;
    size_t n;
    if (registry_shard_list(svc->reg, NULL, &v, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++)
        if (v[i].state == SHARD_PROVISIONING)
            provision_one(svc, &v[i], fence);
    registry_shards_free(v, n);
    if (registry_shard_list(svc->reg, NULL, &v, &n) < 0) /* again: some moved on */
        return;
    for (size_t i = 0; i < n; i++)
        if (v[i].state == SHARD_INITIALIZING)
            initialize_one(svc, &v[i], fence);
    registry_shards_free(v, n);
}

bool svc_worker_run_once(shard_service *svc)
{
    int64_t token = 0;
    if (svc->sess && !session_is_leader(svc->sess, &token))
        return false;
    reg_fence fence = {ELECTION_KEY, token};
    pass(svc, svc->sess ? &fence : NULL);
    return true;
}

static void *worker_main(void *arg)
{
    shard_service *svc = arg;
    for (;;) {
        pthread_mutex_lock(&svc->mu);
        if (!svc->stop && !svc->kick) {
            struct timespec dl = clock_cond_deadline(PASS_EVERY_MS);
            pthread_cond_timedwait(&svc->cv, &svc->mu, &dl);
        }
        bool stop = svc->stop;
        svc->kick = false;
        pthread_mutex_unlock(&svc->mu);
        if (stop)
            return NULL;
        svc_worker_run_once(svc);
    }
}

int svc_worker_start(shard_service *svc, session *sess)
{
    svc->sess = sess;
    if (pthread_create(&svc->th, NULL, worker_main, svc) != 0)
        return CITRUS_ENOMEM;
    svc->running = true;
    return 0;
}

void svc_worker_stop(shard_service *svc)
{
    if (!svc->running)
        return;
    pthread_mutex_lock(&svc->mu);
    svc->stop = true;
    pthread_cond_broadcast(&svc->cv);
    pthread_mutex_unlock(&svc->mu);
    pthread_join(svc->th, NULL);
    svc->running = false;
}

void svc_worker_kick(shard_service *svc)
{
    pthread_mutex_lock(&svc->mu);
    svc->kick = true;
    pthread_cond_broadcast(&svc->cv);
    pthread_mutex_unlock(&svc->mu);
}
