/* workers/runner.c — a worker's rounds and threads (see runner.h). */
#include "workers/runner.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "obs/log.h"
#include "obs/metrics.h"

#define DEFAULT_BATCH 100
#define DEFAULT_IDLE_MS 200
#define MAX_THREADS 16

enum { M_PROCESSED, M_FAILED, M_RETRIED, M_DEAD, M_DUP, M_SKIPPED, M_LAG, M_COUNT };

static const char *const metric_names[M_COUNT] = {
    "citrus_worker_processed_total",  "citrus_worker_failed_total",
    "citrus_worker_retried_total",    "citrus_worker_dead_lettered_total",
    "citrus_worker_duplicates_total", "citrus_worker_skipped_total",
    "citrus_worker_lag_seconds"};

struct worker {
    worker_spec s; /* its strings point into the copies below */
    char *name, *topic, *group;
    metric_series *m[M_COUNT];
    pthread_mutex_t mu;
    pthread_cond_t wake; /* stop */
    bool stopping;       /* guarded by mu */
    int nthreads;
    pthread_t th[MAX_THREADS];
};

static void describe(void)
{
    metrics_describe("citrus_worker_processed_total", METRIC_COUNTER,
                     "events a worker handled and recorded (filtered ones included)");
    metrics_describe("citrus_worker_failed_total", METRIC_COUNTER,
                     "events whose handling failed (handler, malformed envelope, store)");
    metrics_describe("citrus_worker_retried_total", METRIC_COUNTER,
                     "failed events the bus delivers again after its backoff");
    metrics_describe("citrus_worker_dead_lettered_total", METRIC_COUNTER,
                     "events a worker sent to the dead-letter topic");
    metrics_describe("citrus_worker_duplicates_total", METRIC_COUNTER,
                     "events found in the processed-ids ledger, committed without their handler");
    metrics_describe("citrus_worker_skipped_total", METRIC_COUNTER,
                     "events the worker's filter left out (committed, nothing stored)");
    metrics_describe("citrus_worker_lag_seconds", METRIC_GAUGE,
                     "age of the oldest event of a worker's last batch when polled");
}

int worker_new(const worker_spec *spec, worker **out, errdetail *e)
{
    *out = NULL;
    if (!spec || !spec->name || !spec->topic || !spec->group || !spec->bus || !spec->rec ||
        !spec->handle || spec->visibility_ms <= 0)
        return errdetail_set(e, CITRUS_EINVAL, "worker: incomplete spec");
    if (spec->threads < 0 || spec->threads > MAX_THREADS || spec->batch > 1000)
        return errdetail_set(e, CITRUS_EINVAL, "worker: 1 to %d threads, batch up to 1000",
                             MAX_THREADS);
    worker *w = calloc(1, sizeof(*w));
    if (!w)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    w->s = *spec;
    w->name = strdup(spec->name);
    w->topic = strdup(spec->topic);
    w->group = strdup(spec->group);
    if (!w->name || !w->topic || !w->group || pthread_mutex_init(&w->mu, NULL) != 0) {
        free(w->name);
        free(w->topic);
        free(w->group);
        free(w);
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    }
    if (clock_cond_init(&w->wake) != 0) {
        pthread_mutex_destroy(&w->mu);
        free(w->name);
        free(w->topic);
        free(w->group);
        free(w);
        return errdetail_set(e, CITRUS_ENOMEM, "worker: condition variable");
    }
    w->s.name = w->name;
    w->s.topic = w->topic;
    w->s.group = w->group;
    if (!w->s.batch)
        w->s.batch = DEFAULT_BATCH;
    if (!w->s.threads)
        w->s.threads = 1;
    if (w->s.idle_ms <= 0)
        w->s.idle_ms = DEFAULT_IDLE_MS;
    describe();
    char labels[BUS_NAME_MAX * 2 + 16], esc[BUS_NAME_MAX * 2 + 1];
    metrics_escape_label(w->name, esc, sizeof(esc));
    snprintf(labels, sizeof(labels), "worker=\"%s\"", esc);
    for (int i = 0; i < M_COUNT; i++)
        w->m[i] =
            metrics_series(metric_names[i], labels, i == M_LAG ? METRIC_GAUGE : METRIC_COUNTER);
    *out = w;
    return 0;
}

/* ---- one round ------------------------------------------------------------------ */

/* What became of one polled event. */
/* ST_COPY: a later copy of an id handled earlier in the batch: committed
 * once that one is recorded (the batch's one transaction), its handler not
 * run. ST_COMMIT: done (recorded, or found in the ledger), to commit with
 * the batch's others (bus_commit_batch). */
typedef enum { ST_OPEN, ST_DONE, ST_RECORD, ST_COPY, ST_COMMIT } ev_state;

typedef struct item {
    bus_message *m;
    envelope ev;
    worker_effect fx;
    ev_state st;
    bool published; /* fx.publish went into a bus_publish_batch call */
} item;

static void effect_free(worker_effect *fx)
{
    for (int i = 0; i < WORKER_OWNED_MAX; i++)
        free(fx->owned[i]);
    memset(fx, 0, sizeof(*fx));
}

static void log_event(log_level level, const worker *w, const item *it, const char *msg,
                      const char *error)
{
    if (!log_enabled(level))
        return;
    json_t *f =
        json_pack("{s:s,s:s,s:i,s:I,s:i}", "worker", w->name, "topic", it->m->topic, "partition",
                  it->m->partition, "offset", (json_int_t)it->m->offset, "attempt", it->m->attempt);
    if (f && it->ev.id)
        json_object_set_new(f, "event_id", json_string(it->ev.id));
    if (f && it->ev.type)
        json_object_set_new(f, "type", json_string(it->ev.type));
    if (f && error)
        json_object_set_new(f, "error", json_string(error));
    log_emit(level, "worker", msg, f);
}

/* The event failed: to the dead letters now (permanent) or through the
 * bus's retries (which dead-letter the last attempt). */
static void fail_item(worker *w, item *it, bool permanent, const char *error)
{
    errdetail e;
    metric_add(w->m[M_FAILED], 1);
    bool dead = permanent || it->m->attempt >= w->s.max_attempts;
    int rc = permanent ? bus_dead_letter(w->s.bus, w->group, it->m, error, &e)
                       : bus_nack(w->s.bus, w->group, it->m, error, &e);
    if (rc < 0) {
        /* The lease ended meanwhile (ECONFLICT) or the bus failed: the
         * event comes again when its lease ends, counted as a retry. */
        log_event(LOG_WARN, w, it, "event failed; the bus refused its nack", e.message);
        metric_add(w->m[M_RETRIED], 1);
    } else if (dead && !strstr(it->m->topic, BUS_DLQ_SUFFIX)) {
        log_event(LOG_ERROR, w, it, "event failed: dead-lettered", error);
        metric_add(w->m[M_DEAD], 1);
    } else {
        log_event(LOG_WARN, w, it, "event failed: retried after backoff", error);
        metric_add(w->m[M_RETRIED], 1);
    }
    it->st = ST_DONE;
}

/* Done: committed with the batch (commit_batch). */
static void commit_item(worker *w, item *it)
{
    (void)w;
    it->st = ST_COMMIT;
}

/* Commits every ST_COMMIT item in one bus_commit_batch. One that fails
 * comes again when its lease ends and is found in the ledger. */
static void commit_batch(worker *w, item *items, size_t n)
{
    const bus_message **msgs = calloc(n, sizeof(*msgs));
    int *rcs = calloc(n, sizeof(*rcs));
    size_t *idx = calloc(n, sizeof(*idx));
    size_t k = 0;
    errdetail e;
    int rc = msgs && rcs && idx ? 0 : errdetail_set(&e, CITRUS_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        if (items[i].st == ST_COMMIT) {
            if (rc == 0) {
                msgs[k] = items[i].m;
                idx[k++] = i;
            } else {
                log_set_correlation(items[i].ev.correlationid);
                log_event(LOG_WARN, w, &items[i], "commit failed (the event comes again)",
                          e.message);
            }
            items[i].st = ST_DONE;
        }
    if (k > 0 && bus_commit_batch(w->s.bus, w->group, msgs, k, rcs, &e) < 0)
        for (size_t j = 0; j < k; j++)
            if (rcs[j] < 0) {
                log_set_correlation(items[idx[j]].ev.correlationid);
                log_event(LOG_WARN, w, &items[idx[j]],
                          "commit failed (the event comes again, found in the ledger)",
                          citrus_strerror(rcs[j]));
            }
    free(msgs);
    free(rcs);
    free(idx);
}

/* Whether a ST_RECORD item before i has the id of items[i] (a copy's
 * original, still to record). */
static bool original_open(const item *items, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (items[j].st == ST_RECORD && strcmp(items[j].ev.id, items[i].ev.id) == 0)
            return true;
    return false;
}

/* Publishes what the handlers asked to (worker_effect.publish): one
 * bus_publish_batch per topic, in batch order. The events of a call that
 * failed fail (retried), and so do their later copies. */
static void publish_batch(worker *w, item *items, size_t n)
{
    bus_record *recs = calloc(n, sizeof(*recs));
    size_t *idx = calloc(n, sizeof(*idx));
    for (size_t i = 0; i < n; i++) {
        if (items[i].st != ST_RECORD || !items[i].fx.publish_topic || items[i].published)
            continue;
        const char *topic = items[i].fx.publish_topic;
        size_t k = 0;
        for (size_t j = i; j < n; j++) {
            item *it = &items[j];
            if (it->st != ST_RECORD || !it->fx.publish_topic || it->published ||
                strcmp(it->fx.publish_topic, topic) != 0)
                continue;
            it->published = true;
            if (recs && idx) {
                recs[k] = it->fx.publish;
                idx[k] = j;
            }
            k++;
        }
        errdetail e;
        int rc = recs && idx ? bus_publish_batch(w->s.bus, topic, recs, k, NULL, NULL, NULL, &e)
                             : errdetail_set(&e, CITRUS_ENOMEM, "out of memory");
        if (rc == 0)
            continue;
        char msg[BUS_ERROR_MAX];
        snprintf(msg, sizeof(msg), "publishing on %s: %s", topic, e.message);
        for (size_t j = i; j < n; j++) {
            item *it = &items[j];
            if (it->st == ST_RECORD && it->published && it->fx.publish_topic &&
                strcmp(it->fx.publish_topic, topic) == 0) {
                log_set_correlation(it->ev.correlationid);
                fail_item(w, it, false, msg);
                effect_free(&it->fx);
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        if (items[i].st == ST_COPY && !original_open(items, i)) {
            log_set_correlation(items[i].ev.correlationid);
            fail_item(w, &items[i], false, "its first copy in the batch failed");
        }
    free(recs);
    free(idx);
}

/* Parse, ledger, handler: items[i] is ST_DONE (failed, or a duplicate
 * committed), ST_RECORD (to record with the batch) or ST_COPY. */
static void handle_item(worker *w, item *items, size_t i)
{
    item *it = &items[i];
    errdetail e;
    errdetail_clear(&e);
    int rc = envelope_parse((const char *)it->m->value, it->m->value_len, w->s.max_event_bytes,
                            &it->ev, &e);
    if (rc < 0) {
        char msg[BUS_ERROR_MAX];
        snprintf(msg, sizeof(msg), "malformed envelope: %s", e.message);
        fail_item(w, it, true, msg);
        return;
    }
    log_set_correlation(it->ev.correlationid);
    for (size_t j = 0; j < i; j++)
        if (items[j].st == ST_RECORD && strcmp(items[j].ev.id, it->ev.id) == 0) {
            it->st = ST_COPY;
            return;
        }
    bool seen = false;
    if ((rc = records_processed_seen(w->s.rec, w->group, it->ev.id, &seen, &e)) < 0) {
        fail_item(w, it, false, e.message);
        return;
    }
    if (seen) {
        metric_add(w->m[M_DUP], 1);
        log_event(LOG_INFO, w, it, "event already processed: committed", NULL);
        commit_item(w, it);
        return;
    }
    errdetail_clear(&e);
    rc = w->s.handle(w->s.ctx, &it->ev, it->m, &it->fx, &e);
    if (rc < 0) {
        fail_item(w, it, it->fx.permanent, e.message[0] ? e.message : "handler failed");
        effect_free(&it->fx);
        return;
    }
    it->st = ST_RECORD;
}

/* Records every ST_RECORD item of the batch in one transaction, then
 * commits them; on a store failure each is nacked. */
static void record_batch(worker *w, item *items, size_t n)
{
    processed_entry *pe = calloc(n, sizeof(*pe));
    size_t *idx = calloc(n, sizeof(*idx));
    size_t k = 0;
    errdetail e;
    int rc = pe && idx ? 0 : errdetail_set(&e, CITRUS_ENOMEM, "out of memory");
    int64_t now = clock_wall_ms(w->s.clock);
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (items[i].st != ST_RECORD)
            continue;
        pe[k] = (processed_entry){
            .group = w->group,
            .event_id = items[i].ev.id,
            .time_ms = now,
            .notification = items[i].fx.has_notification ? &items[i].fx.notification : NULL};
        idx[k++] = i;
    }
    if (rc == 0 && k > 0)
        rc = records_processed_record(w->s.rec, pe, k, &e);
    for (size_t j = 0; j < k; j++) {
        item *it = &items[idx[j]];
        log_set_correlation(it->ev.correlationid);
        if (rc < 0) {
            fail_item(w, it, false, e.message);
            continue;
        }
        if (pe[j].duplicate) {
            metric_add(w->m[M_DUP], 1);
        } else {
            metric_add(w->m[M_PROCESSED], 1);
            if (it->fx.skipped)
                metric_add(w->m[M_SKIPPED], 1);
            log_event(LOG_DEBUG, w, it, "event processed", NULL);
        }
        commit_item(w, it);
    }
    if (rc < 0) /* e.g. ENOMEM before the loop: nack what was handled */
        for (size_t i = 0; i < n; i++)
            if (items[i].st == ST_RECORD)
                fail_item(w, &items[i], false, e.message);
    /* Later copies of an id: done when the first copy was recorded. */
    for (size_t i = 0; i < n; i++) {
        if (items[i].st != ST_COPY)
            continue;
        log_set_correlation(items[i].ev.correlationid);
        if (rc < 0) {
            fail_item(w, &items[i], false, e.message);
        } else {
            metric_add(w->m[M_DUP], 1);
            log_event(LOG_INFO, w, &items[i], "event already processed: committed", NULL);
            commit_item(w, &items[i]);
        }
    }
    free(pe);
    free(idx);
}

int worker_run_once(worker *w, size_t *handled, errdetail *e)
{
    if (handled)
        *handled = 0;
    if (w->s.ready && !w->s.ready(w->s.ctx)) {
        metric_set(w->m[M_LAG], 0);
        return 0;
    }
    bus_message *msgs = NULL;
    size_t n = 0;
    int rc = bus_poll(w->s.bus, w->group, w->topic, w->s.batch, w->s.visibility_ms, &msgs, &n, e);
    if (rc < 0)
        return rc;
    if (n == 0) {
        metric_set(w->m[M_LAG], 0);
        return 0;
    }
    item *items = calloc(n, sizeof(*items));
    if (!items) {
        /* Not handled: the leases end and the events come again. */
        bus_messages_free(msgs, n);
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    }
    int64_t now = clock_wall_ms(w->s.clock), oldest = now;
    for (size_t i = 0; i < n; i++) {
        items[i].m = &msgs[i];
        if (msgs[i].time_ms < oldest)
            oldest = msgs[i].time_ms;
    }
    metric_set(w->m[M_LAG], (double)(now - oldest) / 1000.0);
    for (size_t i = 0; i < n; i++)
        handle_item(w, items, i);
    publish_batch(w, items, n);
    record_batch(w, items, n);
    commit_batch(w, items, n);
    for (size_t i = 0; i < n; i++) {
        effect_free(&items[i].fx);
        envelope_clear(&items[i].ev);
    }
    log_set_correlation(NULL);
    free(items);
    bus_messages_free(msgs, n);
    if (handled)
        *handled = n;
    return 0;
}

/* ---- threads --------------------------------------------------------------------- */

static bool pause_or_stop(worker *w, int64_t ms)
{
    pthread_mutex_lock(&w->mu);
    if (!w->stopping && ms > 0) {
        struct timespec until = clock_cond_deadline(ms);
        while (!w->stopping && pthread_cond_timedwait(&w->wake, &w->mu, &until) != ETIMEDOUT) {
        }
    }
    bool stop = w->stopping;
    pthread_mutex_unlock(&w->mu);
    return stop;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    for (;;) {
        size_t handled = 0;
        errdetail e;
        int rc = worker_run_once(w, &handled, &e);
        if (rc < 0)
            log_warn("worker", "poll failed",
                     json_pack("{s:s,s:s}", "worker", w->name, "error", e.message));
        /* A full batch: at once (only a stop ends the loop); else a pause. */
        if (pause_or_stop(w, rc == 0 && handled > 0 ? 0 : w->s.idle_ms))
            break;
    }
    return NULL;
}

int worker_start(worker *w, errdetail *e)
{
    for (int i = 0; i < w->s.threads; i++) {
        if (pthread_create(&w->th[i], NULL, worker_main, w) != 0)
            return errdetail_set(e, CITRUS_ENOMEM, "worker %s: cannot start a thread", w->name);
        w->nthreads++;
    }
    log_info("worker", "started",
             json_pack("{s:s,s:s,s:s,s:i}", "worker", w->name, "topic", w->topic, "group", w->group,
                       "threads", w->nthreads));
    return 0;
}

void worker_stop(worker *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->nthreads; i++)
        pthread_join(w->th[i], NULL);
    if (w->nthreads)
        log_info("worker", "stopped", json_pack("{s:s}", "worker", w->name));
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->mu);
    free(w->name);
    free(w->topic);
    free(w->group);
    free(w);
}
