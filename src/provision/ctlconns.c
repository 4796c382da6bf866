/* provision/ctlconns.c — see ctlconns.h.
 *
 * A list of entries under one mutex (a node has tens of shards, not
 * millions). An entry is counted (refs): one for being listed, one per
 * checkout; the last to let go frees its pool (pool_free) and itself, so
 * a pool is never freed under a thread about to call pool_get on it. */
#include "provision/ctlconns.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "citrus/errors.h"
#include "core/shard.h"
#include "dbconn/pool.h"
#include "obs/metrics.h"

#define MAX_APPLIED 16
#define OPENED_METRIC "citrus_shard_control_connections_opened_total"

typedef struct applied {
    char name[65], digest[65];
} applied;

struct ctl_entry {
    ctl_entry *next;
    char id[SHARD_ID_MAX + 1];
    char *dsn;
    pool *pool;
    int refs;
    bool listed;
    uint64_t reported; /* connections opened, as counted in the metric */
    applied done[MAX_APPLIED];
    size_t ndone;             /* past MAX_APPLIED the oldest is replaced */
    pthread_mutex_t apply_mu; /* ctlconns_apply_lock */
};

struct ctlconns {
    pthread_mutex_t mu;
    ctl_entry *head;
    const sysclock *clock;
    int64_t connect_timeout_ms;
};

ctlconns *ctlconns_new(const sysclock *clock, int64_t connect_timeout_ms)
{
    ctlconns *cc = calloc(1, sizeof(*cc));
    if (!cc)
        return NULL;
    pthread_mutex_init(&cc->mu, NULL);
    cc->clock = clock;
    cc->connect_timeout_ms = connect_timeout_ms;
    metrics_describe(OPENED_METRIC, METRIC_COUNTER,
                     "connections the control plane opened to a shard's database (schema "
                     "template checks at registration; pooled)");
    return cc;
}

static void entry_free(ctl_entry *ent)
{
    pthread_mutex_destroy(&ent->apply_mu);
    pool_free(ent->pool);
    free(ent->dsn);
    free(ent);
}

/* Drops one reference (cc->mu held); true when ent is to be freed (after
 * unlocking). */
static bool unref(ctl_entry *ent)
{
    return --ent->refs == 0;
}

/* Takes ent out of the list (cc->mu held); true when it is to be freed. */
static bool unlist(ctlconns *cc, ctl_entry *ent)
{
    for (ctl_entry **pp = &cc->head; *pp; pp = &(*pp)->next) {
        if (*pp == ent) {
            *pp = ent->next;
            ent->next = NULL;
            ent->listed = false;
            return unref(ent);
        }
    }
    return false;
}

void ctlconns_free(ctlconns *cc)
{
    if (!cc)
        return;
    pthread_mutex_lock(&cc->mu);
    while (cc->head) {
        ctl_entry *ent = cc->head;
        bool last = unlist(cc, ent);
        if (last)
            entry_free(ent);
        /* else the checkout still out frees it; ctlconns_put never touches cc's list
         * for an unlisted entry beyond its lock, so cc must outlive it: the
         * service stops registrations before freeing */
    }
    pthread_mutex_unlock(&cc->mu);
    pthread_mutex_destroy(&cc->mu);
    free(cc);
}

/* The listed entry for id at dsn, referenced; a stale one (another DSN) is
 * replaced. NULL when out of memory. cc->mu held. */
static ctl_entry *entry_for(ctlconns *cc, const char *id, const char *dsn, ctl_entry **doomed)
{
    *doomed = NULL;
    for (ctl_entry *ent = cc->head; ent; ent = ent->next) {
        if (strcmp(ent->id, id) != 0)
            continue;
        if (strcmp(ent->dsn, dsn) == 0) {
            ent->refs++;
            return ent;
        }
        if (unlist(cc, ent))
            *doomed = ent;
        break;
    }
    ctl_entry *ent = calloc(1, sizeof(*ent));
    if (!ent)
        return NULL;
    snprintf(ent->id, sizeof(ent->id), "%s", id);
    ent->dsn = strdup(dsn);
    ent->pool = ent->dsn ? pool_new(&(pool_options){.dsn = dsn,
                                                    .max_size = CTLCONNS_POOL_SIZE,
                                                    .connect_timeout_ms = cc->connect_timeout_ms,
                                                    .sandbox = DRV_SANDBOX_SCHEMA,
                                                    .clock = cc->clock})
                         : NULL;
    if (!ent->pool) {
        free(ent->dsn);
        free(ent);
        return NULL;
    }
    pthread_mutex_init(&ent->apply_mu, NULL);
    ent->refs = 2; /* listed, and this checkout */
    ent->listed = true;
    ent->next = cc->head;
    cc->head = ent;
    return ent;
}

/* Adds the connections ent's pool opened since last time to the metric
 * (cc->mu held). */
static void report_opened(ctl_entry *ent)
{
    pool_stats st;
    pool_get_stats(ent->pool, &st);
    if (st.opened <= ent->reported)
        return;
    char esc[2 * SHARD_ID_MAX + 8], labels[2 * SHARD_ID_MAX + 32];
    metrics_escape_label(ent->id, esc, sizeof(esc));
    snprintf(labels, sizeof(labels), "shard=\"%s\"", esc);
    metrics_counter_add(OPENED_METRIC, labels, (double)(st.opened - ent->reported));
    ent->reported = st.opened;
}

/* Lets go of a checkout's reference to ent. */
static void release(ctlconns *cc, ctl_entry *ent)
{
    pthread_mutex_lock(&cc->mu);
    if (ent->listed)
        report_opened(ent);
    bool last = unref(ent);
    pthread_mutex_unlock(&cc->mu);
    if (last)
        entry_free(ent);
}

int ctlconns_get(ctlconns *cc, const char *id, const char *dsn, int64_t at_ms, ctl_entry **ent,
                 drv_conn **out, errdetail *e)
{
    *ent = NULL;
    *out = NULL;
    if (!id || !dsn)
        return errdetail_set(e, CITRUS_EINVAL, "no shard or no DSN");
    ctl_entry *doomed;
    pthread_mutex_lock(&cc->mu);
    ctl_entry *got = entry_for(cc, id, dsn, &doomed);
    pthread_mutex_unlock(&cc->mu);
    if (doomed)
        entry_free(doomed);
    if (!got)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    int rc = pool_get_until(got->pool, at_ms, out, e);
    if (rc) {
        release(cc, got);
        return rc;
    }
    *ent = got;
    return 0;
}

void ctlconns_put(ctlconns *cc, ctl_entry *ent, drv_conn *c, bool discard)
{
    if (!ent)
        return;
    pool_put(ent->pool, c, discard);
    release(cc, ent);
}

void ctlconns_applied(ctlconns *cc, ctl_entry *ent, const char *template, char out[65])
{
    out[0] = '\0';
    pthread_mutex_lock(&cc->mu);
    for (size_t i = 0; i < ent->ndone && i < MAX_APPLIED; i++)
        if (strcmp(ent->done[i].name, template) == 0)
            memcpy(out, ent->done[i].digest, 65);
    pthread_mutex_unlock(&cc->mu);
}

void ctlconns_mark_applied(ctlconns *cc, ctl_entry *ent, const char *template, const char *digest)
{
    pthread_mutex_lock(&cc->mu);
    size_t i = 0;
    while (i < ent->ndone && i < MAX_APPLIED && strcmp(ent->done[i].name, template) != 0)
        i++;
    if (i == ent->ndone || i == MAX_APPLIED)
        i = ent->ndone++ % MAX_APPLIED;
    snprintf(ent->done[i].name, sizeof(ent->done[i].name), "%s", template);
    snprintf(ent->done[i].digest, sizeof(ent->done[i].digest), "%s", digest);
    pthread_mutex_unlock(&cc->mu);
}

int ctlconns_apply_lock(ctl_entry *ent, int64_t left_ms)
{
    if (left_ms == INT64_MAX)
        return pthread_mutex_lock(&ent->apply_mu) == 0 ? 0 : CITRUS_ETIMEOUT;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts); /* what pthread_mutex_timedlock reads */
    int64_t ns = ts.tv_nsec + (left_ms % 1000) * 1000000;
    ts.tv_sec += (time_t)(left_ms / 1000 + ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    int rc;
    while ((rc = pthread_mutex_timedlock(&ent->apply_mu, &ts)) == EINTR)
        ;
    return rc == 0 ? 0 : CITRUS_ETIMEOUT;
}

void ctlconns_apply_unlock(ctl_entry *ent)
{
    pthread_mutex_unlock(&ent->apply_mu);
}

void ctlconns_forget(ctlconns *cc, const char *id)
{
    if (!cc || !id)
        return;
    pthread_mutex_lock(&cc->mu);
    ctl_entry *doomed = NULL;
    for (ctl_entry *ent = cc->head; ent; ent = ent->next) {
        if (strcmp(ent->id, id) == 0) {
            if (unlist(cc, ent))
                doomed = ent;
            break;
        }
    }
    pthread_mutex_unlock(&cc->mu);
    if (doomed)
        entry_free(doomed);
}
