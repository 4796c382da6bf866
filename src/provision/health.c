/* provision/health.c — the shard health monitor (see health.h). */
#include "provision/health.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "core/dsn.h"
#include "dbconn/driver.h"
#include "obs/metrics.h"
#include "sys/fanout.h"

#define PROBE_THREADS 16
#define METRIC_REACHABLE "citrus_shard_reachable"

typedef struct entry {
    char id[SHARD_ID_MAX + 1];
    shard_health_view v;
    bool probing;           /* a probe of it is under way */
    int64_t probe_start_ms; /* monotonic, when it began */
    int64_t probe_epoch;    /* the record's epoch it is of */
    bool seen;              /* listed by the current round */
} entry;

struct shard_health {
    registry *reg;
    const sysclock *clock;
    int64_t interval_ms, timeout_ms;
    health_probe_fn probe;
    void *probe_ctx;
    pthread_mutex_t round_mu; /* one round at a time */
    pthread_mutex_t mu;       /* what follows */
    pthread_cond_t cv;
    entry *e;
    size_t n, cap;
    int64_t next_due_ms; /* monotonic; INT64_MIN: now */
    bool stop, running;
    bool kick; /* asked for a round while one ran */
    pthread_t th;
};

const char *health_status_name(health_status s)
{
    switch (s) {
    case HEALTH_REACHABLE:
        return "reachable";
    case HEALTH_UNREACHABLE:
        return "unreachable";
    default:
        return "unknown";
    }
}

static int drv_probe_fn(void *ctx, const shard *s, int64_t timeout_ms, int64_t *latency_ms,
                        errdetail *e)
{
    const shard_health *h = ctx;
    if (!s->dsn)
        return errdetail_set(e, CITRUS_EUNAVAILABLE, "no database yet");
    drv_options o = {.timeout_ms = timeout_ms, .clock = h->clock};
    return drv_probe(s->dsn, &o, latency_ms, e);
}

shard_health *shard_health_new(registry *reg, int64_t interval_ms, int64_t timeout_ms,
                               const sysclock *clock)
{
    shard_health *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->reg = reg;
    h->clock = clock;
    h->interval_ms = interval_ms > 0 ? interval_ms : 2000;
    h->timeout_ms = timeout_ms > 0 ? timeout_ms : 2000;
    h->probe = drv_probe_fn;
    h->probe_ctx = h;
    h->next_due_ms = INT64_MIN;
    pthread_mutex_init(&h->round_mu, NULL);
    pthread_mutex_init(&h->mu, NULL);
    clock_cond_init(&h->cv);
    metrics_describe(METRIC_REACHABLE, METRIC_GAUGE,
                     "1 when the shard's last background probe reached it, 0 when not");
    return h;
}

void shard_health_set_probe(shard_health *h, health_probe_fn fn, void *ctx)
{
    h->probe = fn;
    h->probe_ctx = ctx;
}

void shard_health_free(shard_health *h)
{
    if (!h)
        return;
    shard_health_stop(h);
    pthread_mutex_destroy(&h->round_mu);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h->e);
    free(h);
}

/* The entry of id, or NULL; under mu. */
static entry *find(shard_health *h, const char *id)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->e[i].id, id) == 0)
            return &h->e[i];
    return NULL;
}

/* The entry of id, added (unknown) when missing; NULL when out of memory;
 * under mu. */
static entry *find_or_add(shard_health *h, const char *id)
{
    entry *x = find(h, id);
    if (x)
        return x;
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        entry *ne = realloc(h->e, cap * sizeof(*ne));
        if (!ne)
            return NULL;
        h->e = ne;
        h->cap = cap;
    }
    x = &h->e[h->n++];
    memset(x, 0, sizeof(*x));
    snprintf(x->id, sizeof(x->id), "%s", id);
    return x;
}

static void set_gauge(const char *id, double v)
{
    char esc[2 * SHARD_ID_MAX + 8], labels[2 * SHARD_ID_MAX + 32];
    metrics_escape_label(id, esc, sizeof(esc));
    snprintf(labels, sizeof(labels), "shard=\"%s\"", esc);
    metrics_gauge_set(METRIC_REACHABLE, labels, v);
}

/* Drops the entries of shards gone from the catalog, and their series (a
 * probe of the round before the delete may have set one again). Under
 * mu. */
static void prune(shard_health *h)
{
    for (size_t i = 0; i < h->n;) {
        if (h->e[i].seen) {
            i++;
            continue;
        }
        metrics_forget("shard", h->e[i].id);
        h->e[i] = h->e[--h->n];
    }
}

typedef struct round_ctx {
    shard_health *h;
    const shard **live;
} round_ctx;

static void record(shard_health *h, const char *id, int rc, int64_t latency_ms, const errdetail *e)
{
    int64_t now = clock_wall_ms(h->clock);
    char *msg = rc < 0 ? dsn_redact_text(e->message[0] ? e->message : citrus_err_code(rc)) : NULL;
    pthread_mutex_lock(&h->mu);
    entry *x = find(h, id);
    bool known = x != NULL;
    if (x) {
        x->probing = false;
        x->v.last_probe_ms = now;
        x->v.epoch = x->probe_epoch;
        if (rc == 0) {
            x->v.failures = 0;
            x->v.latency_ms = latency_ms;
            x->v.last_ok_ms = now;
            x->v.error[0] = '\0';
            x->v.status = HEALTH_REACHABLE;
        } else {
            x->v.failures++;
            snprintf(x->v.error, sizeof(x->v.error), "%s", msg ? msg : "unreachable");
            if (x->v.failures >= HEALTH_FAILS_UNREACHABLE)
                x->v.status = HEALTH_UNREACHABLE;
        }
    }
    pthread_mutex_unlock(&h->mu);
    free(msg);
    if (known)
        set_gauge(id, rc == 0 ? 1 : 0);
}

/* Probes live shard i (a fanout_fn). */
static void probe_job(void *vctx, size_t i)
{
    round_ctx *c = vctx;
    const shard *s = c->live[i];
    errdetail e = {0};
    int64_t latency = 0;
    int rc = c->h->probe(c->h->probe_ctx, s, c->h->timeout_ms, &latency, &e);
    if (rc < 0 && e.code == 0)
        e.code = rc;
    if (rc > 0)
        rc = 0;
    record(c->h, s->id, rc, latency, &e);
}

static void round_run(shard_health *h)
{
    shard *v;
    size_t nv;
    if (registry_shard_list(h->reg, NULL, &v, &nv) < 0)
        return; /* the catalog is unreachable: the last results stand */
    const shard **live = calloc(nv ? nv : 1, sizeof(*live));
    size_t nl = 0;
    if (!live) {
        registry_shards_free(v, nv);
        return;
    }
    int64_t start = clock_mono_ms(h->clock);
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < h->n; i++)
        h->e[i].seen = false;
    for (size_t i = 0; i < nv; i++) {
        entry *x = find_or_add(h, v[i].id);
        if (!x)
            continue;
        x->seen = true;
        if (v[i].state == SHARD_RETIRED) { /* out of service: not probed, unknown */
            x->probing = false;
            memset(&x->v, 0, sizeof(x->v));
            continue;
        }
        x->probing = true;
        x->probe_start_ms = start;
        x->probe_epoch = v[i].epoch;
        live[nl++] = &v[i];
    }
    prune(h);
    pthread_mutex_unlock(&h->mu);
    round_ctx c = {h, live};
    fanout_run(nl, PROBE_THREADS, probe_job, &c);
    free(live);
    registry_shards_free(v, nv);
}

bool shard_health_tick(shard_health *h)
{
    pthread_mutex_lock(&h->round_mu);
    pthread_mutex_lock(&h->mu);
    bool due = h->next_due_ms == INT64_MIN || clock_mono_ms(h->clock) >= h->next_due_ms;
    if (due)
        h->kick = false;
    pthread_mutex_unlock(&h->mu);
    if (due) {
        round_run(h);
        pthread_mutex_lock(&h->mu);
        if (!h->kick) /* a kick during the round asks for another */
            h->next_due_ms = clock_mono_ms(h->clock) + h->interval_ms;
        pthread_mutex_unlock(&h->mu);
    }
    pthread_mutex_unlock(&h->round_mu);
    return due;
}

void shard_health_get(shard_health *h, const char *id, int64_t epoch, shard_health_view *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&h->mu);
    const entry *x = find(h, id);
    if (x) {
        *out = x->v;
        int64_t running = clock_mono_ms(h->clock) - x->probe_start_ms;
        if (x->probing && running > h->timeout_ms + HEALTH_GRACE_MS &&
            (epoch < 0 || x->probe_epoch == epoch)) {
            out->status = HEALTH_UNREACHABLE;
            snprintf(out->error, sizeof(out->error), "no answer to a probe for %lld ms",
                     (long long)running);
        } else if (epoch >= 0 && out->status != HEALTH_UNKNOWN && out->epoch != epoch) {
            out->status = HEALTH_UNKNOWN; /* of another version of the record */
            out->error[0] = '\0';
        }
    }
    pthread_mutex_unlock(&h->mu);
}

static void *health_main(void *arg)
{
    shard_health *h = arg;
    for (;;) {
        pthread_mutex_lock(&h->mu);
        int64_t wait = h->next_due_ms == INT64_MIN ? 0 : h->next_due_ms - clock_mono_ms(h->clock);
        if (!h->stop && wait > 0) {
            struct timespec dl = clock_cond_deadline(wait);
            pthread_cond_timedwait(&h->cv, &h->mu, &dl);
        }
        bool stop = h->stop;
        pthread_mutex_unlock(&h->mu);
        if (stop)
            return NULL;
        shard_health_tick(h);
    }
}

int shard_health_start(shard_health *h)
{
    if (h->running)
        return 0;
    h->stop = false;
    if (pthread_create(&h->th, NULL, health_main, h) != 0)
        return CITRUS_ENOMEM;
    h->running = true;
    return 0;
}

void shard_health_stop(shard_health *h)
{
    if (!h->running)
        return;
    pthread_mutex_lock(&h->mu);
    h->stop = true;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->th, NULL);
    h->running = false;
}

void shard_health_kick(shard_health *h)
{
    pthread_mutex_lock(&h->mu);
    h->kick = true;
    h->next_due_ms = INT64_MIN;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}
