/* node/workers_boot.c — the workers role of a node (see workers_boot.h). */
#include "node/workers_boot.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "citrus/errors.h"
#include "obs/log.h"
#include "provision/service.h"
#include "registry/tenants.h"
#include "records/ledger.h"
#include "sys/clock.h"
#include "sys/ticker.h"
#include "records/registrations.h"
#include "workers/ingest.h"
#include "workers/notify.h"
#include "workers/registration.h"
#include "workers/runner.h"
#include "workers/smcmd.h"

#define PURGE_EVERY_MS (3600 * 1000)
#define DAY_MS (24LL * 3600 * 1000)

static struct {
    worker *notify, *ingest, *regq, *sm;
    smcmd_ctx smctx;
    ingest_ctx ictx;
    char ingest_topic[256];
    regq_worker_ctx regq_ctx;
    char regq_topic[256];
    ticker *regq_sweeper;
    notify_filter *filter;
    ticker *purger;
    records *rec;
    int64_t ledger_keep_ms, notify_keep_ms, regq_keep_ms;
    _Atomic(session *) sess; /* workers_set_session's */
    atomic_bool sess_known;  /* workers_set_session was called */
} role;

void workers_set_session(session *s)
{
    atomic_store(&role.sess, s);
    atomic_store(&role.sess_known, true);
}

static void purge(void *ctx)
{
    (void)ctx;
    int64_t now = clock_wall_ms(NULL), ledger = 0, notes = 0, regs = 0;
    errdetail e;
    if (records_processed_purge(role.rec, now - role.ledger_keep_ms, &ledger, &e) < 0 ||
        records_notifications_purge(role.rec, now - role.notify_keep_ms, &notes, &e) < 0 ||
        records_reg_purge(role.rec, now - role.regq_keep_ms, &regs, &e) < 0)
        log_warn("workers", "retention: purge failed", json_pack("{s:s}", "error", e.message));
    else if (ledger || notes || regs)
        log_info("workers", "retention: rows deleted",
                 json_pack("{s:I,s:I,s:I}", "ledger", (json_int_t)ledger, "notifications",
                           (json_int_t)notes, "registrations", (json_int_t)regs));
}

/* The registration queue's sweeper (regq_sweep): due retries published,
 * abandoned running records made truthful. */
static void regq_sweep_tick(void *ctx)
{
    (void)ctx;
    size_t published = 0, stale = 0;
    errdetail e;
    if (regq_sweep(&role.regq_ctx, &published, &stale, &e) < 0)
        log_warn("workers", "registration sweep failed", json_pack("{s:s}", "error", e.message));
    else if (stale)
        log_warn("workers", "registrations left running by a stopped worker",
                 json_pack("{s:I}", "count", (json_int_t)stale));
}

/* The registration worker (workers/registration.h) on
 * bus.topics.registrations; none on a node without the shard manager
 * (the queue then waits for a node that has one). */
int workers_regq_boot(const citrus_config *cfg, const char *cmd, app *a)
{
    if (strcmp(cfg->workers_enabled, "true") != 0 || !a->bus || !a->rec)
        return 0;
    if (!a->shards) {
        log_warn("workers", "no shard manager here: the registration worker does not run", NULL);
        return 0;
    }
    config_bus_topic(cfg, CONFIG_TOPIC_REGISTRATIONS, role.regq_topic, sizeof(role.regq_topic));
    role.regq_ctx = (regq_worker_ctx){.rec = a->rec,
                                      .svc = a->shards,
                                      .max_attempts = (int)cfg->bus_max_attempts,
                                      .backoff_base_ms = cfg->bus_backoff_base_ms,
                                      .backoff_cap_ms = cfg->bus_backoff_cap_ms,
                                      /* a shard that does not answer: well within the lease */
                                      .attempt_ms = cfg->bus_visibility_ms / 3,
                                      .lease_ms = cfg->bus_visibility_ms,
                                      .bus = a->bus,
                                      .topic = role.regq_topic};
    worker_spec s = {.name = "registration",
                     .topic = role.regq_topic,
                     .group = cfg->bus_groups[CONFIG_GROUP_REGISTRATION],
                     .bus = a->bus,
                     .rec = a->rec,
                     .visibility_ms = cfg->bus_visibility_ms,
                     .batch = 1, /* one registration per round: a slow shard holds back no other */
                     .max_event_bytes = (size_t)cfg->bus_max_event_bytes,
                     .max_attempts = (int)cfg->bus_max_attempts,
                     .threads = (int)cfg->workers_threads,
                     .handle = regq_handle,
                     .ctx = &role.regq_ctx};
    errdetail e;
    int rc = worker_new(&s, &role.regq, &e);
    if (rc == 0)
        rc = worker_start(role.regq, &e);
    if (rc < 0) {
        fprintf(stderr, "citrus %s: cannot start the registration worker: %s\n", cmd, e.message);
        return rc;
    }
    /* the retries' clock: often enough for the shortest backoff */
    int64_t every = cfg->bus_backoff_base_ms / 2;
    role.regq_sweeper = ticker_start("regq-sweep",
                                     every < 50     ? 50
                                     : every > 1000 ? 1000
                                                    : every,
                                     regq_sweep_tick, NULL);
    return 0;
}

/* The directory's pin, else the ring's owner (as GET /v1/route answers). */
int workers_ingest_route(void *ctx, const char *tenant_key, ingest_target *out, errdetail *e)
{
    registry *reg = ctx;
    if (!tenant_key_valid(tenant_key))
        return errdetail_set(e, CITRUS_EINVAL, "tenant_key %s is not a valid tenant key",
                             tenant_key);
    const ring *rg;
    int64_t version;
    int rc = registry_ring(reg, &rg, &version, NULL);
    if (rc < 0)
        return errdetail_set(e, rc, "the ring cannot be read");
    route_answer ra;
    rc = tenants_route(reg, rg, version, tenant_key, &ra);
    registry_ring_release(reg, rg);
    if (rc == CITRUS_EUNAVAILABLE)
        return errdetail_set(e, rc, "no shard owns any token yet");
    if (rc < 0)
        return errdetail_set(e, rc, "routing %s failed", tenant_key);
    snprintf(out->shard_id, sizeof(out->shard_id), "%s", ra.shard_id);
    out->pinned = ra.pinned;
    out->ring_version = ra.ring_version;
    return 0;
}

/* smcmd_ctx.leader: this node's controller session; none yet: not
 * leading; none at all (it could not start): unfenced, token 0. */
static bool sm_leader(void *ctx, int64_t *token)
{
    (void)ctx;
    *token = 0;
    if (!atomic_load(&role.sess_known))
        return false;
    session *s = atomic_load(&role.sess);
    return !s || session_is_leader(s, token);
}

/* Starts one worker (name, e.g. "event_notification") on topic t with
 * group g, with the workers and bus settings; reported on stderr. */
static int start_worker(const citrus_config *cfg, const char *cmd, app *a, const char *name,
                        config_topic t, config_group g, worker_handler handle, void *ctx,
                        bool (*ready)(void *ctx), worker **out)
{
    char topic[256];
    config_bus_topic(cfg, t, topic, sizeof(topic));
    worker_spec s = {.name = name,
                     .topic = topic,
                     .group = cfg->bus_groups[g],
                     .bus = a->bus,
                     .rec = a->rec,
                     .visibility_ms = cfg->bus_visibility_ms,
                     .batch = (size_t)cfg->workers_batch,
                     .max_event_bytes = (size_t)cfg->bus_max_event_bytes,
                     .max_attempts = (int)cfg->bus_max_attempts,
                     .threads = (int)cfg->workers_threads,
                     .handle = handle,
                     .ctx = ctx,
                     .ready = ready};
    errdetail e;
    int rc = worker_new(&s, out, &e);
    if (rc == 0)
        rc = worker_start(*out, &e);
    if (rc < 0)
        fprintf(stderr, "citrus %s: cannot start the %s worker: %s\n", cmd, name, e.message);
    return rc;
}

int workers_boot(const citrus_config *cfg, const char *cmd, app *a)
{
    if (strcmp(cfg->workers_enabled, "true") != 0)
        return 0;
    errdetail e;
    int rc = notify_filter_new(cfg->notify_sources, cfg->notify_types, cfg->notify_severities,
                               &role.filter, &e);
    if (rc < 0) {
        fprintf(stderr, "citrus %s: invalid config: %s\n", cmd, e.message);
        return rc;
    }
    rc = start_worker(cfg, cmd, a, "event_notification", CONFIG_TOPIC_PLATFORM_EVENTS,
                      CONFIG_GROUP_EVENT_NOTIFICATION, notify_handle, role.filter, NULL,
                      &role.notify);
    /* The enrollment ingest worker, when this node runs the shard manager
     * (its registry routes). */
    if (rc == 0 && a->shards) {
        config_bus_topic(cfg, CONFIG_TOPIC_SHARD_INGEST_COMMANDS, role.ingest_topic,
                         sizeof(role.ingest_topic));
        role.ictx = (ingest_ctx){.rec = a->rec,
                                 .topic = role.ingest_topic,
                                 .max_event_bytes = (size_t)cfg->bus_max_event_bytes,
                                 .route = workers_ingest_route,
                                 .route_ctx = a->shards->reg};
        rc = start_worker(cfg, cmd, a, "enrollment_ingest", CONFIG_TOPIC_ENROLLMENT_EVENTS,
                          CONFIG_GROUP_ENROLLMENT_INGEST, ingest_handle, &role.ictx, NULL,
                          &role.ingest);
    }
    /* The shard management worker: commands run through the shard manager,
     * outcomes on the lifecycle topic. */
    if (rc == 0 && a->shards) {
        role.smctx.svc = a->shards;
        role.smctx.bus = a->bus;
        role.smctx.attempt_ms = cfg->bus_visibility_ms / 3; /* well within the lease */
        /* fenced by the controller's token, as the controller's own writes */
        role.smctx.leader = sm_leader;
        config_bus_topic(cfg, CONFIG_TOPIC_SM_EVENTS, role.smctx.events_topic,
                         sizeof(role.smctx.events_topic));
        rc = start_worker(cfg, cmd, a, "shard_management", CONFIG_TOPIC_SM_COMMANDS,
                          CONFIG_GROUP_SHARD_MANAGEMENT, smcmd_handle, &role.smctx, smcmd_ready,
                          &role.sm);
    }
    if (rc < 0) {
        workers_stop();
        return rc;
    }
    role.rec = a->rec;
    role.regq_keep_ms = cfg->regq_retention_days * DAY_MS;
    /* An event the bus may still hold (its retention) is still known to the
     * ledger: kept a day longer. */
    role.ledger_keep_ms = cfg->bus_retention_hours * 3600 * 1000 + DAY_MS;
    role.notify_keep_ms = cfg->notify_retention_days * DAY_MS;
    purge(NULL);
    role.purger = ticker_start("workers-purge", PURGE_EVERY_MS, purge, NULL);
    return 0;
}

void workers_regq_stop(void)
{
    ticker_stop(role.regq_sweeper);
    role.regq_sweeper = NULL;
    worker_stop(role.regq);
    role.regq = NULL;
}

void workers_stop(void)
{
    ticker_stop(role.purger);
    worker_stop(role.sm);
    worker_stop(role.ingest);
    worker_stop(role.notify);
    notify_filter_free(role.filter);
    memset(&role, 0, sizeof(role));
}
